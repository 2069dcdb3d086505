//! The file being validated, and the errors and warnings found in it, each led by the
//! file, line and column of the field it is about.

use crate::locate::{DocumentError, Root, check_document, from_yaml, locate, locate_key};
use crate::path::FieldPath;
use crate::{ConfigError, Location};

/// Locating re-reads the file, so a file with thousands of warnings (a big Kong file full
/// of other plugins and routes) would take quadratic time; past this many, warnings keep
/// their path but not their line.
const LOCATED_WARNINGS: usize = 100;

/// Fields whose values are credentials: errors about them never show the value.
const SECRET_FIELDS: &[&str] = &[
    "key",
    "password",
    "secret",
    "rsa_public_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "secret_access_key",
    "header_value",
    "param_value",
    "azure_client_secret",
    "gcp_service_account_json",
];

/// The file being validated, and what has been noticed so far.
pub(crate) struct Cx<'a> {
    file: &'a str,
    yaml: &'a str,
    warnings: Vec<String>,
    located_warnings: usize,
    /// Fields whose values came from decK references, and the variables they read.
    pub(crate) references: crate::env::References,
}

impl<'a> Cx<'a> {
    /// Starts on `yaml`, named `file` in every message.
    pub(crate) fn new(file: &'a str, yaml: &'a str) -> Self {
        Cx {
            file,
            yaml,
            warnings: Vec::new(),
            located_warnings: 0,
            references: Vec::new(),
        }
    }
}

impl Cx<'_> {
    /// The warnings so far, one line each.
    pub(crate) fn into_warnings(self) -> Vec<String> {
        self.warnings
    }

    fn location(&self, path: &FieldPath) -> Option<Location> {
        locate(self.yaml, path)
    }

    pub(crate) fn invalid(&self, path: &FieldPath, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            location: self.location(path),
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// An error about a key that should not be there, located at the key itself.
    pub(crate) fn invalid_key(&self, path: &FieldPath, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            location: locate_key(self.yaml, path),
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn warn(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push_warning(path, message.into(), false);
    }

    /// A warning about a key that should not be there, located at the key itself.
    pub(crate) fn warn_key(&mut self, path: &FieldPath, message: &str) {
        self.push_warning(path, message.to_owned(), true);
    }

    fn push_warning(&mut self, path: &FieldPath, message: String, at_key: bool) {
        let location = if self.located_warnings < LOCATED_WARNINGS {
            self.located_warnings += 1;
            if at_key {
                locate_key(self.yaml, path)
            } else {
                locate(self.yaml, path)
            }
        } else {
            None
        };
        let line = ConfigError::Invalid {
            file: self.file.to_owned(),
            location,
            path: path.to_string(),
            message,
        }
        .to_string();
        self.warnings.push(line);
    }

    /// Syntax, duplicate keys, and the document's shape, with serde_yaml's positions,
    /// before figment (which keeps no positions and lets a duplicate key silently win).
    pub(crate) fn check_yaml(&self) -> Result<(), ConfigError> {
        match check_document(self.yaml) {
            Ok(Root::Mapping) => Ok(()),
            Ok(Root::Empty) => Err(ConfigError::Invalid {
                file: self.file.to_owned(),
                location: None,
                path: String::new(),
                message: "the file is empty; expected a decK file with `_format_version` and `services`".to_owned(),
            }),
            Ok(Root::Other(kind)) => Err(self.invalid(
                &FieldPath::root(),
                format!("expected a mapping (a decK file with `_format_version` and `services`), found {kind}"),
            )),
            Err(DocumentError::DuplicateKey(path, location)) => Err(ConfigError::Invalid {
                file: self.file.to_owned(),
                location,
                path: path.to_string(),
                message: "duplicate key; each key may appear once in a mapping".to_owned(),
            }),
            Err(DocumentError::Syntax(err)) => {
                let location = err.location().map_or(Location { line: 1, column: 1 }, from_yaml);
                // serde_yaml appends the position to its message; we lead with it instead.
                let suffix = format!(" at line {} column {}", location.line, location.column);
                let message = err.to_string().replacen(&suffix, "", 1);
                Err(ConfigError::Syntax {
                    file: self.file.to_owned(),
                    location,
                    message,
                })
            }
        }
    }

    /// A figment extraction error, as a located error on `base` + the error's own path.
    /// The value of a secret field is never quoted: `key: 12345` is wrong, and a secret.
    pub(crate) fn figment_error(&self, base: &FieldPath, err: figment::Error) -> ConfigError {
        let path = base.join_figment(&err.path);
        let secret = err
            .path
            .last()
            .is_some_and(|field| SECRET_FIELDS.contains(&field.as_str()));
        match &err.kind {
            figment::error::Kind::MissingField(field) => {
                self.invalid(&path.key(field), "required field missing")
            }
            figment::error::Kind::InvalidType(_, expected) if secret => self.invalid(
                &path,
                format!("invalid type: expected {expected} (the value is a secret and not shown)"),
            ),
            _ if secret => {
                self.invalid(&path, "invalid value (the value is a secret and not shown)")
            }
            kind => self.invalid(&path, kind.to_string()),
        }
    }
}
