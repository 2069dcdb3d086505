//! Turns the raw decK mirror into the runtime [`GatewayConfig`], once, at start.
//!
//! Every error built here names the field's Kong path and, through [`crate::locate`], the
//! line and column where the file has it. By concern:
//! - [`diagnostics`]: the file being read and the errors and warnings located in it;
//! - [`attach`]: decK's entities, and which plugin runs on which route;
//! - [`ai_proxy`]: an ai-proxy-advanced config's fields, and what aigw can serve of them.

mod ai_proxy;
mod attach;
mod diagnostics;

use figment::value::Value;

pub(crate) use diagnostics::Cx;

use crate::model::GatewayConfig;
use crate::path::FieldPath;
use crate::raw::DeckRaw;
use crate::{ConfigError, env};

/// decK `_format_version`s we read: "3.0" (Kong 3.x) and "1.1" (Kong 2.x). Paths are read
/// as Kong 3 reads them in both: a regex path starts with `~` (Kong 2 guessed regexes
/// from their characters; `deck convert` adds the `~`).
const FORMAT_VERSIONS: &[&str] = &["3.0", "1.1"];

pub(crate) fn parse(file: &str, yaml: &str) -> Result<GatewayConfig, ConfigError> {
    let mut cx = Cx::new(file, yaml);
    cx.check_yaml()?;
    let mut tree: Value = serde_yaml::from_str(yaml)
        .map_err(|err| cx.invalid(&FieldPath::root(), format!("invalid YAML: {err}")))?;
    cx.references = env::resolve_tree(&mut tree, &FieldPath::root())
        .map_err(|(path, message)| cx.invalid(&path, message))?;
    // Straight from the tree: going through a second Figment would clone the whole tree
    // at every level of nesting, a peak of ~70 KB per route that the allocator keeps.
    let deck: DeckRaw = tree
        .deserialize()
        .map_err(|err| cx.figment_error(&FieldPath::root(), err))?;
    check_format_version(&cx, &deck)?;
    let (routes, consumers) = cx.build(&deck)?;
    if routes.is_empty() {
        return Err(ConfigError::NoAiRoutes {
            file: file.to_owned(),
        });
    }
    Ok(GatewayConfig {
        routes,
        consumers,
        warnings: cx.into_warnings(),
    })
}

fn check_format_version(cx: &Cx<'_>, deck: &DeckRaw) -> Result<(), ConfigError> {
    let path = FieldPath::root().key("_format_version");
    let expected = FORMAT_VERSIONS
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(" or ");
    match &deck.format_version {
        None => Err(cx.invalid(
            &path,
            format!("required field missing; expected {expected}"),
        )),
        Some(v) if FORMAT_VERSIONS.contains(&v.0.as_str()) => Ok(()),
        Some(v) => Err(cx.invalid(
            &path,
            format!(
                "unsupported decK format version {:?}, expected {expected}",
                v.0
            ),
        )),
    }
}
