//! One rulebook from the command line (issue 7, sections 2 and 3): `xsr save` refuses a
//! domain directory that restore would reject, with the rule restore reports for the same
//! domain in a stream, and leaves no output; `restore` and `extract` check PV page tables
//! and the start_info page; `verify` says what it did not check.

mod common;

use std::fs;
use std::path::Path;

use common::{real_save_file, stderr, stdout, xsr};
use serde_json::Value;
use sr_format::{Item, RecordType, StreamReader};

/// Restores the real Xen file into `dir/restored`; returns the directory.
fn restored_real(dir: &Path) -> String {
    let file = dir.join("real.save");
    fs::write(&file, real_save_file()).unwrap();
    let out = dir.join("restored");
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    out.to_str().unwrap().to_string()
}

fn edit_manifest(dir: &str, f: impl FnOnce(&mut Value)) {
    let path = Path::new(dir).join("domain.json");
    let mut m: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    f(&mut m);
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The real stream with each PAGE_DATA pfn word passed through `f(pfn, type nibble)`.
fn edited_stream(mut f: impl FnMut(u64, u8) -> (u64, u8)) -> Vec<u8> {
    let bytes = real_save_file();
    let mut out = bytes.clone();
    let mut r = StreamReader::from_slice(&bytes);
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item
            && rec.rtype == RecordType::PAGE_DATA
        {
            let count = u32::from_le_bytes(rec.body[..4].try_into().unwrap()) as usize;
            let body = rec.offset as usize + 8;
            for i in 0..count {
                let at = body + 8 + 8 * i;
                let word = u64::from_le_bytes(out[at..at + 8].try_into().unwrap());
                let (pfn, t) = f(word & sr_format::PFN_MASK, (word >> 60) as u8);
                out[at..at + 8].copy_from_slice(&(pfn | u64::from(t) << 60).to_le_bytes());
            }
        }
    }
    out
}

/// `xsr save DIR` refuses with exit 1, leaves no output, and gives restore's rule (the text
/// after `rule_prefix`-style location in restore's message) for `stream`.
fn assert_same_refusal(dir: &Path, restored: &str, stream: &[u8]) -> String {
    let out = dir.join("out.save");
    let o = xsr(&["save", restored, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!out.exists(), "a refused save left {}", out.display());
    assert_eq!(fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "restored").count(), 1);
    let save_err = stderr(&o);
    let rule =
        save_err.split("restore would reject this domain: ").nth(1).expect("save names the rule").trim().to_string();
    // Restore of the same domain as a stream reports the same rule.
    let file = dir.join("edited.save");
    fs::write(&file, stream).unwrap();
    let r = xsr(&["restore", file.to_str().unwrap(), "--out", dir.join("r").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).trim_end().ends_with(&rule), "save: {save_err}\nrestore: {}", stderr(&r));
    fs::remove_file(file).unwrap();
    rule
}

#[test]
fn save_refuses_cleared_page_types_as_restore_does() {
    let dir = tempfile::tempdir().unwrap();
    let restored = restored_real(dir.path());
    edit_manifest(&restored, |m| m["page_types"] = Value::Array(Vec::new()));
    let stream = edited_stream(|pfn, t| if matches!(t & 7, 1..=4) && t < 0xD { (pfn, 0) } else { (pfn, t) });
    let rule = assert_same_refusal(dir.path(), &restored, &stream);
    assert!(
        rule.starts_with("vcpu 0: CR3 pfn 0x") && rule.ends_with("has page type NOTAB, not the top-level L4TAB"),
        "{rule}"
    );
}

#[test]
fn save_refuses_a_p2m_frame_typed_as_a_page_table_as_restore_does() {
    let dir = tempfile::tempdir().unwrap();
    let restored = restored_real(dir.path());
    let mut frame = 0;
    edit_manifest(&restored, |m| {
        frame = m["p2m"]["frames"][0].as_u64().unwrap();
        m["page_types"].as_array_mut().unwrap().push(serde_json::json!([frame, 1, "L1TAB"]));
    });
    let stream = edited_stream(|pfn, t| if pfn == frame { (pfn, 1) } else { (pfn, t) });
    let rule = assert_same_refusal(dir.path(), &restored, &stream);
    assert_eq!(rule, format!("p2m frame 0 at pfn {frame:#x} has page type L1TAB, not NOTAB"));
}

#[test]
fn save_refuses_a_pfn_populated_past_the_p2m_end_as_restore_does() {
    let dir = tempfile::tempdir().unwrap();
    let restored = restored_real(dir.path());
    let mut end = 0;
    edit_manifest(&restored, |m| {
        end = m["p2m"]["end_pfn"].as_u64().unwrap();
        m["memory"]["pages"] = Value::from(end + 2);
        m["memory"]["populated"].as_array_mut().unwrap().push(serde_json::json!([end + 1, 1]));
    });
    let image = Path::new(&restored).join("memory.img");
    let f = fs::OpenOptions::new().write(true).open(&image).unwrap();
    f.set_len((end + 2) * 4096).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0xAB; 4096], (end + 1) * 4096).unwrap();
    // The same pfn in a stream: the first ordinary page renamed.
    let mut renamed = false;
    let stream = edited_stream(|pfn, t| {
        if !renamed && t == 0 && pfn > 0x100 {
            renamed = true;
            (end + 1, t)
        } else {
            (pfn, t)
        }
    });
    let rule = assert_same_refusal(dir.path(), &restored, &stream);
    assert_eq!(rule, format!("pfn {:#x} is beyond the domain's pfn limit {:#x}", end + 1, end + 1));
}

#[test]
fn restore_and_extract_check_page_tables_and_verify_says_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // A present entry naming pfn 0x100000 in the first L1 table of the real guest.
    let bytes = real_save_file();
    let mut out = bytes.clone();
    let mut r = StreamReader::from_slice(&bytes);
    let mut target = None;
    while let Some(item) = r.next_item().unwrap() {
        if let Item::Record(rec) = item
            && rec.rtype == RecordType::PAGE_DATA
            && target.is_none()
        {
            let count = u32::from_le_bytes(rec.body[..4].try_into().unwrap()) as usize;
            let words: Vec<u64> =
                (0..count).map(|i| u64::from_le_bytes(rec.body[8 + 8 * i..16 + 8 * i].try_into().unwrap())).collect();
            let mut data = 0;
            for (entry, w) in words.iter().enumerate() {
                let t = (w >> 60) as u8;
                if t & 7 == 1 && t < 0xD {
                    let at = rec.offset as usize + 8 + 8 + 8 * count + data * 4096 + 5 * 8;
                    out[at..at + 8].copy_from_slice(&(0x1_0000_0000u64 | 0x67).to_le_bytes());
                    target = Some((rec.index, rec.offset, entry, w & sr_format::PFN_MASK, t));
                    break;
                }
                if t & 7 <= 4 && !(5..=8).contains(&t) {
                    data += 1;
                }
            }
        }
    }
    let (index, offset, entry, pfn, t) = target.unwrap();
    let name = sr_format::PageType::from_nibble(t);
    let file = dir.path().join("bad-pte.save");
    fs::write(&file, &out).unwrap();
    let want = format!(
        "record {index} (PAGE_DATA) at byte {offset}: entry {entry}: {name} page at pfn {pfn:#x}: entry 5 \
         (0x0000000100000067) names pfn 0x100000, beyond max_pfn 0x1fff"
    );
    let o = xsr(&["restore", file.to_str().unwrap(), "--out", dir.path().join("r").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let o = xsr(&["extract", file.to_str().unwrap(), "--out", dir.path().join("x.raw").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "nothing left but the input");
    // verify skips page bodies: it accepts and says exactly what it did not check.
    let v = xsr(&["verify", file.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0));
    let text = stdout(&v);
    assert!(text.contains("not checked: entries of 119 x86 PV page-table pages (page bodies skipped)"), "{text}");
    assert!(text.contains("not checked: the x86 PV start_info page's xenstore and console frames"), "{text}");
    let j: Value = serde_json::from_slice(&xsr(&["verify", "--json", file.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(j["not_checked"].as_array().unwrap().len(), 2);
}
