//! First steps of a start: the operator token, and owner-only modes on the data directory and
//! the catalog (which holds key hashes), tightened on existing installations too.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

use crate::ServerError;

const TOKEN_FILE: &str = "operator.token";

/// The operator token: the one given by the environment, else the one stored in
/// `DIR/operator.token`, else a new random one written there with mode 0600.
pub fn operator_token(data_dir: &Path, given: Option<&str>) -> Result<String, ServerError> {
    if let Some(token) = given {
        let token = token.trim();
        if token.len() < 16 {
            return Err(ServerError::OperatorToken(
                "STRATA_OPERATOR_TOKEN must be at least 16 characters".into(),
            ));
        }
        return Ok(token.to_string());
    }
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => {
            tracing::info!("operator token is in {}", path.display());
            return Ok(existing.trim().to_string());
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(ServerError::OperatorToken(format!(
                "{}: {err}",
                path.display()
            )))
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("op_{}", hex::encode(bytes));
    write_private(&path, &token)
        .map_err(|err| ServerError::OperatorToken(format!("{}: {err}", path.display())))?;
    tracing::info!("created operator token in {}", path.display());
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// The catalog file; SQLite adds `-wal` and `-shm` beside it.
pub const CATALOG_FILE: &str = "catalog.sqlite";
/// Owner-only: the catalog holds key hashes and every tenant's schema (issue 24 found
/// `catalog.sqlite` at 0644 and the directories at 0755).
#[cfg(unix)]
const PRIVATE_DIR: u32 = 0o700;
#[cfg(unix)]
const PRIVATE_FILE: u32 = 0o600;

/// Creates the data directory and the server's subdirectories (`hot/`, and `cold/` when the
/// cold tier is local under it) with mode 0700, and creates the catalog file with mode 0600
/// before SQLite opens it: SQLite gives its `-wal` and `-shm` files the mode of the database
/// file. Modes of an existing installation are tightened the same way.
pub fn secure_data_dir(data_dir: &Path, cold_under_data_dir: bool) -> Result<(), ServerError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServerError::DataDir { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    tighten(data_dir, PrivateKind::Dir).map_err(io_error(data_dir))?;
    let subdirs: &[&str] = if cold_under_data_dir {
        &["hot", "cold"]
    } else {
        &["hot"]
    };
    for name in subdirs {
        let dir = data_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        tighten(&dir, PrivateKind::Dir).map_err(io_error(&dir))?;
    }
    let catalog = data_dir.join(CATALOG_FILE);
    create_private_file(&catalog).map_err(io_error(&catalog))?;
    secure_catalog_files(data_dir)
}

/// Sets 0600 on the catalog, its `-wal` and `-shm` files and the operator token, where they
/// exist (files left by an older version keep the mode they were created with).
pub fn secure_catalog_files(data_dir: &Path) -> Result<(), ServerError> {
    for name in [
        CATALOG_FILE.to_string(),
        format!("{CATALOG_FILE}-wal"),
        format!("{CATALOG_FILE}-shm"),
        TOKEN_FILE.to_string(),
    ] {
        let path = data_dir.join(name);
        tighten(&path, PrivateKind::File).map_err(|source| ServerError::DataDir {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum PrivateKind {
    Dir,
    File,
}

/// Sets the owner-only mode on `path` when it has group or other bits; a missing path is
/// fine. No-op off Unix.
fn tighten(path: &Path, kind: PrivateKind) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match kind {
            PrivateKind::Dir => PRIVATE_DIR,
            PrivateKind::File => PRIVATE_FILE,
        };
        let current = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode() & 0o777,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        if current != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            tracing::info!(
                "set mode {mode:o} on {} (was {current:o}): owner only",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, kind);
    Ok(())
}

/// Creates an empty file with mode 0600 unless it exists (SQLite treats an empty file as an
/// empty database).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_installations_get_owner_only_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        secure_data_dir(&data, true).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("hot")), 0o700);
        assert_eq!(mode(&data.join("cold")), 0o700);
        assert_eq!(mode(&data.join(CATALOG_FILE)), 0o600);

        // An older installation: world-readable everything.
        let wal = data.join(format!("{CATALOG_FILE}-wal"));
        std::fs::write(&wal, b"").unwrap();
        for (path, loose) in [
            (data.clone(), 0o755),
            (data.join("hot"), 0o755),
            (data.join(CATALOG_FILE), 0o644),
            (wal.clone(), 0o644),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
        }
        secure_data_dir(&data, false).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("hot")), 0o700);
        assert_eq!(mode(&data.join(CATALOG_FILE)), 0o600);
        assert_eq!(mode(&wal), 0o600);
    }
}
