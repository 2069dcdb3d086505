//! A decK file's references to the environment, resolved once at load time: decK's
//! `${{ env "DECK_NAME" }}` and Kong's env vault, `{vault://env/name}`.
//!
//! decK renders its references anywhere in a state file and reads only variables named `DECK_*`, so
//! that a file cannot pull arbitrary process secrets (`AWS_SECRET_ACCESS_KEY`, …) into a
//! header sent to a URL the file chose. aigw does the same, on every string value after
//! the YAML is read, so a reference inside a quoted string (`"Bearer ${{ env
//! \"DECK_KEY\" }}"`) works as it does in an unquoted one.

use figment::value::Value;

use crate::ConfigError;
use crate::path::FieldPath;
use crate::validate::Cx;

/// What starts a reference.
const OPEN: &str = "${{";
/// What ends one.
const CLOSE: &str = "}}";
/// The prefix decK requires of the variables it reads.
const PREFIX: &str = "DECK_";

/// The fields whose values came from decK references, with the variables each read: kept
/// so the status listener can say where a credential came from without its value.
pub(crate) type References = Vec<(FieldPath, Vec<String>)>;

/// Replaces every reference in every string of `tree`; the error names the field and the
/// variable. Returns the fields that had references.
pub(crate) fn resolve_tree(
    tree: &mut Value,
    path: &FieldPath,
) -> Result<References, (FieldPath, String)> {
    let mut references = Vec::new();
    resolve_with(
        tree,
        path,
        &|name| std::env::var(name).ok(),
        &mut references,
    )?;
    Ok(references)
}

fn resolve_with(
    tree: &mut Value,
    path: &FieldPath,
    lookup: &dyn Fn(&str) -> Option<String>,
    references: &mut References,
) -> Result<(), (FieldPath, String)> {
    match tree {
        Value::String(_, text) => {
            if let Some(resolved) = resolve(text, lookup).map_err(|e| (path.clone(), e))? {
                let names = text
                    .split(OPEN)
                    .skip(1)
                    .filter_map(|rest| variable_name(rest.split(CLOSE).next()?))
                    .map(str::to_owned)
                    .collect();
                references.push((path.clone(), names));
                *text = resolved;
            }
        }
        Value::Dict(_, dict) => {
            for (key, value) in dict.iter_mut() {
                resolve_with(value, &path.key(key), lookup, references)?;
            }
        }
        Value::Array(_, items) => {
            for (index, value) in items.iter_mut().enumerate() {
                resolve_with(value, &path.index(index), lookup, references)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The environment variable a Kong env-vault reference `{vault://env/name}` names
/// (upper-cased, `-` as `_`); `None` for any other value.
pub(crate) fn vault_variable(value: &str) -> Option<String> {
    let name = value
        .trim()
        .strip_prefix("{vault://env/")?
        .strip_suffix('}')?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_ascii_uppercase().replace('-', "_"))
}

/// `text` with its references replaced, or `None` when it has none.
///
/// Errors never quote a resolved value, only the reference and the variable's name.
fn resolve(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    if !text.contains(OPEN) {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            return Err(format!(
                "unterminated reference {}; expected ${{{{ env \"DECK_NAME\" }}}}",
                &rest[start..]
            ));
        };
        let reference = &rest[start..start + OPEN.len() + end + CLOSE.len()];
        let name = variable_name(&after[..end]).ok_or_else(|| {
            format!(
                "unsupported reference {reference}; aigw resolves only ${{{{ env \"DECK_NAME\" }}}}"
            )
        })?;
        if !name.starts_with(PREFIX) || name.len() == PREFIX.len() {
            return Err(format!(
                "{reference} names {name}, but decK reads only variables named DECK_*"
            ));
        }
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "{reference}: environment variable {name} is not set"
                ));
            }
        }
        rest = &after[end + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// `NAME` from ` env "NAME" `.
fn variable_name(expression: &str) -> Option<&str> {
    let quoted = expression.trim().strip_prefix("env")?;
    // `env"X"` is not a Go template call; a space must separate them.
    if !quoted.starts_with(char::is_whitespace) {
        return None;
    }
    let name = quoted.trim().strip_prefix('"')?.strip_suffix('"')?;
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

impl Cx<'_> {
    /// Resolves a Kong vault reference `{vault://env/name}` to the environment variable
    /// `NAME` (upper-cased, `-` as `_`), as Kong's env vault does; other values pass through.
    pub(crate) fn dereference(
        &self,
        path: &FieldPath,
        value: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let Some(reference) = value
            .trim()
            .strip_prefix("{vault://")
            .and_then(|r| r.strip_suffix('}'))
        else {
            return Ok(Some(value));
        };
        let Some(name) = reference.strip_prefix("env/") else {
            let backend = reference.split('/').next().unwrap_or_default();
            return Err(self.invalid(
                path,
                format!(
                    "vault backend {backend:?} is not supported by aigw; only {{vault://env/NAME}}"
                ),
            ));
        };
        if name.is_empty() || name.contains('/') {
            return Err(self.invalid(
                path,
                format!("unsupported env vault reference {value:?}; expected {{vault://env/NAME}}"),
            ));
        }
        let var = name.to_ascii_uppercase().replace('-', "_");
        match std::env::var(&var) {
            Ok(resolved) => Ok(Some(resolved)),
            Err(_) => Err(self.invalid(
                path,
                format!("vault reference {value:?}: environment variable {var} is not set"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "DECK_OPENAI_API_KEY" => Some("sk-test".to_owned()),
            "DECK_REGION" => Some("eu-west-1".to_owned()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<Option<String>, String> {
        resolve(text, &lookup)
    }

    #[test]
    fn references_are_replaced_in_place() {
        assert_eq!(run("plain"), Ok(None));
        assert_eq!(
            run("Bearer ${{ env \"DECK_OPENAI_API_KEY\" }}"),
            Ok(Some("Bearer sk-test".to_owned()))
        );
        assert_eq!(
            run("${{env \"DECK_REGION\"}}/${{   env   \"DECK_OPENAI_API_KEY\"   }}!"),
            Ok(Some("eu-west-1/sk-test!".to_owned()))
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = run("Bearer ${{ env \"DECK_MISSING_KEY\" }}").expect_err("unset");
        assert!(
            err.contains("environment variable DECK_MISSING_KEY is not set"),
            "{err}"
        );
    }

    #[test]
    fn only_deck_variables_and_env_calls_are_read() {
        let err = run("${{ env \"AWS_SECRET_ACCESS_KEY\" }}").expect_err("not DECK_");
        assert!(err.contains("only variables named DECK_*"), "{err}");
        for bad in [
            "${{ lower \"DECK_X\" }}",
            "${{ env DECK_X }}",
            "${{ env \"DECK_X\" ",
        ] {
            assert!(run(bad).is_err(), "{bad}");
        }
    }
}
