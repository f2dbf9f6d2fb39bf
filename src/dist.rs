//! Man pages and shell completions generated from xsr's clap definition (`xsr::cli::Cli`),
//! so that they always say what the binary accepts: `cargo xtask dist` runs
//! `examples/dist.rs`, which calls [`write()`]. Needs the `dist` feature (clap_mangen,
//! clap_complete).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// What [`write()`] wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// The man pages (section 1): `xsr.1` and one `xsr-SUBCOMMAND.1` per subcommand.
    pub man: Vec<PathBuf>,
    /// The completion scripts: `xsr.bash`, `_xsr` (zsh) and `xsr.fish`.
    pub completions: Vec<PathBuf>,
}

/// Writes the man pages into `dir/man/man1` and the completion scripts into
/// `dir/completions` (both created when missing; files of the same names are replaced).
/// Errors: the directories or files cannot be created or written.
pub fn write(dir: &Path) -> io::Result<Written> {
    let man_dir = dir.join("man").join("man1");
    let completions_dir = dir.join("completions");
    fs::create_dir_all(&man_dir)?;
    fs::create_dir_all(&completions_dir)?;
    let mut written = Written::default();

    // One page for xsr and one per subcommand, named `xsr-SUBCOMMAND.1` as git's are (clap's
    // `help` pseudo-subcommand gets none).
    clap_mangen::generate_to(Cli::command(), &man_dir)?;
    let mut names = vec![format!("{}.1", Cli::command().get_name())];
    for sub in Cli::command().get_subcommands().filter(|s| !s.is_hide_set()) {
        names.push(format!("{}-{}.1", Cli::command().get_name(), sub.get_name()));
    }
    for name in names {
        let path = man_dir.join(name);
        if !path.is_file() {
            return Err(io::Error::other(format!("clap_mangen did not write {}", path.display())));
        }
        written.man.push(path);
    }

    let mut cmd = Cli::command();
    let bin = cmd.get_name().to_string();
    for shell in SHELLS {
        written.completions.push(clap_complete::generate_to(shell, &mut cmd, &bin, &completions_dir)?);
    }
    Ok(written)
}
