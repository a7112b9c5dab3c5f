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
