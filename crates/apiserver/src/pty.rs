//! Pseudo-terminals for `kubectl exec -t`: a pty pair whose subordinate side becomes the
//! command's standard input, output and error, and, through `setsid --ctty`, its controlling
//! terminal (so `^C` interrupts the foreground job and programs see a terminal, as in a
//! container started with `tty: true`). The window size follows kubectl's resize messages.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::pty::OpenptFlags;

/// A pty pair.
#[derive(Debug)]
pub struct Pty {
    /// The side the server reads and writes.
    pub master: File,
    /// The side the command gets.
    pub subordinate: File,
}

impl Pty {
    /// Opens a new pair.
    pub fn open() -> std::io::Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let subordinate = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits().cast_signed())
            .open(Path::new(OsStr::from_bytes(name.as_bytes())))?;
        Ok(Pty {
            master: File::from(master),
            subordinate,
        })
    }
}

/// Sets the window size (columns, rows) of the terminal whose master side is `master`.
pub fn resize(master: &File, width: u16, height: u16) -> std::io::Result<()> {
    rustix::termios::tcsetwinsize(
        master,
        rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// `command` run by `setsid --ctty --wait`: in a session of its own whose controlling
/// terminal is its standard input (the pty). The program, arguments, environment changes and
/// working directory carry over.
pub fn with_controlling_terminal(command: &std::process::Command) -> std::process::Command {
    let mut wrapped = std::process::Command::new("setsid");
    wrapped
        .args(["--ctty", "--wait"])
        .arg(command.get_program())
        .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// A resize message (`{"Width": 80, "Height": 24}`).
pub fn parse_resize(data: &[u8]) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let dim = |k: &str| v.get(k)?.as_u64().and_then(|n| u16::try_from(n).ok());
    Some((dim("Width")?, dim("Height")?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pair_opens_resizes_and_commands_are_wrapped() {
        let pty = Pty::open().unwrap();
        resize(&pty.master, 100, 40).unwrap();
        let size = rustix::termios::tcgetwinsize(&pty.subordinate).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (100, 40));
        let mut c = std::process::Command::new("sh");
        c.args(["-c", "tty"]).env("POD_NAME", "curl-1");
        let w = with_controlling_terminal(&c);
        assert_eq!(w.get_program(), "setsid");
        let args: Vec<&OsStr> = w.get_args().collect();
        assert_eq!(args, ["--ctty", "--wait", "sh", "-c", "tty"]);
        assert_eq!(parse_resize(br#"{"Width":80,"Height":24}"#), Some((80, 24)));
        assert_eq!(parse_resize(b"{}"), None);
    }
}
