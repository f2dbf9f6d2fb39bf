#![cfg(feature = "dist")]
//! `cargo xtask dist`'s man pages and shell completions (`xsr::dist::write`): one page per
//! subcommand, and every page and every completion script names what it must.

use std::fs;
use std::process::Command;

use clap::CommandFactory;
use xsr::cli::Cli;

/// Every subcommand, written out here so that a new one fails this test until its page and
/// completions are checked (and docs/commands.md has it).
const SUBCOMMANDS: [&str; 14] = [
    "inspect",
    "verify",
    "restore",
    "extract",
    "dump",
    "save",
    "demo",
    "send",
    "read",
    "grep",
    "diff",
    "receive",
    "migrate",
    "migrate-receive",
];

/// roff escapes `-` as `\-`.
fn roff(s: &str) -> String {
    s.replace('-', "\\-")
}

#[test]
fn clap_has_exactly_the_listed_subcommands() {
    let mut clap: Vec<String> = Cli::command().get_subcommands().map(|s| s.get_name().to_string()).collect();
    let mut listed: Vec<String> = SUBCOMMANDS.iter().map(|s| s.to_string()).collect();
    clap.sort();
    listed.sort();
    assert_eq!(clap, listed);
}

#[test]
fn man_pages_for_xsr_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let written = xsr::dist::write(dir.path()).unwrap();
    let man1 = dir.path().join("man/man1");
    assert_eq!(written.man.len(), SUBCOMMANDS.len() + 1, "{:?}", written.man);

    let top = fs::read_to_string(man1.join("xsr.1")).unwrap();
    assert!(top.starts_with(".ie \\n(.g .ds Aq") || top.contains(".TH xsr 1"), "not a man page:\n{top}");
    assert!(top.contains(".TH xsr 1"), "{top}");
    for sub in SUBCOMMANDS {
        assert!(top.contains(&roff(&format!("xsr-{sub}(1)"))), "xsr.1 does not list {sub}:\n{top}");
    }
    // The exit-code table of `xsr --help` is in the page too.
    assert!(top.contains("Exit status (every command)"), "{top}");

    let cli = Cli::command();
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let path = man1.join(format!("xsr-{name}.1"));
        let page = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(page.contains(&format!(".TH xsr-{name} 1")), "{}:\n{page}", path.display());
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(page.contains(&roff(&format!("--{long}"))), "{} lacks --{long}", path.display());
            }
        }
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let first_word = about.split_whitespace().next().unwrap_or_default();
        assert!(!first_word.is_empty() && page.contains(&roff(first_word)), "{} lacks its description", path.display());
    }
}

#[test]
fn completions_for_bash_zsh_fish_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let written = xsr::dist::write(dir.path()).unwrap();
    let names: Vec<String> =
        written.completions.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["xsr.bash", "_xsr", "xsr.fish"]);
    for path in &written.completions {
        let script = fs::read_to_string(path).unwrap();
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{} does not complete {sub}", path.display());
        }
        // A flag of one subcommand, and a value of one of its enums.
        assert!(script.contains("max-memory"), "{}", path.display());
        assert!(script.contains("lime"), "{} lacks extract's formats", path.display());
    }
    // The bash script parses; zsh and fish check theirs where they are installed.
    for (shell, file) in [("bash", "xsr.bash"), ("zsh", "_xsr"), ("fish", "xsr.fish")] {
        let path = dir.path().join("completions").join(file);
        match Command::new(shell).arg("-n").arg(&path).output() {
            Ok(out) => assert!(out.status.success(), "{shell} -n {file}: {}", String::from_utf8_lossy(&out.stderr)),
            Err(_) if shell != "bash" => {}
            Err(e) => panic!("bash: {e}"),
        }
    }
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    xsr::dist::write(dir.path()).unwrap();
    let script = dir.path().join("completions/xsr.bash");
    // What bash offers after `xsr re` and `xsr restore --ma`.
    let complete = |words: &str| {
        let line = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); \
             COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _xsr xsr \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash").arg("-c").arg(line).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut got: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
        got.sort();
        got
    };
    assert_eq!(complete("xsr re"), ["read", "receive", "restore"]);
    assert_eq!(complete("xsr restore --max"), ["--max-memory", "--max-span"]);
}
