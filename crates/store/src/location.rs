//! Where the store lives by default.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::StoreError;

/// Chooses the store directory: the flag, else the `EGRESS_STORE` value, else
/// `$XDG_DATA_HOME/egress/cluster`, else `$HOME/.local/share/egress/cluster`.
///
/// The caller reads the environment and passes the values in; empty values count as
/// unset, and a relative `XDG_DATA_HOME` is ignored as the XDG spec requires.
pub fn default_dir(
    flag: Option<PathBuf>,
    env_store: Option<OsString>,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, StoreError> {
    if let Some(dir) = flag.filter(|d| !d.as_os_str().is_empty()) {
        return Ok(dir);
    }
    if let Some(dir) = env_store.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(data) = xdg_data_home.map(PathBuf::from).filter(|d| d.is_absolute()) {
        return Ok(data.join("egress").join("cluster"));
    }
    if let Some(home) = home.filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home)
            .join(".local")
            .join("share")
            .join("egress")
            .join("cluster"));
    }
    Err(StoreError::NoStoreDir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn precedence() {
        let flag = Some(PathBuf::from("/f"));
        assert_eq!(
            default_dir(flag, os("/e"), os("/x"), os("/h")).unwrap(),
            PathBuf::from("/f")
        );
        assert_eq!(
            default_dir(None, os("/e"), os("/x"), os("/h")).unwrap(),
            PathBuf::from("/e")
        );
        assert_eq!(
            default_dir(None, os(""), os("/x"), os("/h")).unwrap(),
            PathBuf::from("/x/egress/cluster")
        );
        assert_eq!(
            default_dir(None, None, os("rel"), os("/h")).unwrap(),
            PathBuf::from("/h/.local/share/egress/cluster")
        );
        assert!(matches!(
            default_dir(None, None, None, None),
            Err(StoreError::NoStoreDir)
        ));
    }
}
