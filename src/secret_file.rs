//! Reading a secret from a file, with one set of checks for every such file
//! (key files, `*_FILE` variables, the admin token, the PostgreSQL
//! password): a regular file (a FIFO would block, `/dev/zero` would never
//! end), at most [`MAX_SECRET_FILE_BYTES`], UTF-8 text. The caller trims
//! (a secret written by `echo` ends in a newline). Errors name the problem,
//! never the content.
//!
//! Also the Docker secrets convention for variables: `NAME_FILE` names a
//! file holding what `NAME` would hold ([`from_env`]); both set is an error.

use std::io::Read;
use std::path::Path;

use crate::env::Env;

/// A secret file is small text: anything larger is a mistake (or
/// `/dev/zero`), refused before it can fill memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The suffix of a variable that names a file instead of holding a value.
pub const FILE_SUFFIX: &str = "_FILE";

/// The bytes of a regular file of at most [`MAX_SECRET_FILE_BYTES`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    // Checked before opening too: opening a FIFO for reading would block.
    let regular = |meta: std::fs::Metadata| {
        if meta.is_file() {
            Ok(())
        } else {
            Err("not a regular file".to_string())
        }
    };
    regular(std::fs::metadata(path).map_err(|err| err.kind().to_string())?)?;
    let file = std::fs::File::open(path).map_err(|err| err.kind().to_string())?;
    regular(file.metadata().map_err(|err| err.kind().to_string())?)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| err.kind().to_string())?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!("larger than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}

/// [`read_bytes`] as text, surrounding whitespace (the trailing newline) trimmed.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    Ok(text.trim().to_string())
}

/// What variable `name` says, directly or through `name_FILE`: `Ok(None)`
/// when neither is set; an error when both are, or when the file cannot be
/// read. The error names the variables and the file, never the content.
pub fn from_env(env: &dyn Env, name: &str) -> Result<Option<String>, String> {
    let file_var = format!("{name}{FILE_SUFFIX}");
    match (env.var(name), env.var(&file_var)) {
        (Some(_), Some(_)) => Err(format!(
            "both {name} and {file_var} are set: set one of them"
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => read_text(Path::new(path.trim()))
            .map(Some)
            .map_err(|detail| format!("{file_var} ({}): {detail}", path.trim())),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn a_file_variable_is_read_trimmed_and_both_set_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret value\n").unwrap();
        let path = path.to_str().unwrap();
        let env = MapEnv::from([("X_FILE", path)]);
        assert_eq!(from_env(&env, "X"), Ok(Some("s3cret value".into())));
        let env = MapEnv::from([("X", "direct")]);
        assert_eq!(from_env(&env, "X"), Ok(Some("direct".into())));
        assert_eq!(from_env(&MapEnv::default(), "X"), Ok(None));
        let both = from_env(&MapEnv::from([("X", "a"), ("X_FILE", path)]), "X").unwrap_err();
        assert!(both.contains("both X and X_FILE"), "{both}");
        assert!(!both.contains("s3cret"), "{both}");
    }

    #[test]
    fn only_small_regular_text_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_text(&big).unwrap_err().contains("larger than"));
        assert_eq!(read_text(dir.path()).unwrap_err(), "not a regular file");
        assert_eq!(
            read_text(Path::new("/dev/zero")).unwrap_err(),
            "not a regular file"
        );
        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert_eq!(read_text(&binary).unwrap_err(), "not UTF-8 text");
        let missing = read_text(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
    }
}
