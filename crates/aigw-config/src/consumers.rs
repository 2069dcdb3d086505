//! Kong's consumers as the plugins after authentication see them (their names, ACL groups
//! and consumer groups), and Kong's `acl` plugin, which allows or denies a route to
//! consumers by group.

use std::collections::HashMap;

use crate::ConfigError;
use crate::path::FieldPath;
use crate::raw::{AclRaw, ConsumerGroupRaw, ConsumerRaw};
use crate::schema::{self, Shape};
use crate::validate::Cx;

/// Kong's `acl`.
pub(crate) const ACL: &str = "acl";

/// One consumer of the decK file, as authentication names it and the plugins after it
/// match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The consumer's `username`, else `custom_id`, else `id`, else `consumers[i]`: the
    /// name key-auth, basic-auth and jwt report for it.
    pub name: String,
    /// `username`.
    pub username: Option<String>,
    /// `id`.
    pub id: Option<String>,
    /// `custom_id`.
    pub custom_id: Option<String>,
    /// `acls[].group`: its ACL groups.
    pub acl_groups: Vec<String>,
    /// The `consumer_groups` it belongs to, by name (from the group's `consumers` or the
    /// consumer's `groups`).
    pub consumer_groups: Vec<ConsumerGroupRef>,
}

/// A consumer group as a consumer belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupRef {
    /// The group's `name`.
    pub name: String,
    /// The group's `id`, when the file gives one.
    pub id: Option<String>,
}

impl ConsumerConfig {
    /// The groups Kong's acl checks for this consumer: its ACL groups, and with
    /// `include_consumer_groups` its consumer groups' names too.
    pub fn acl_groups(&self, include_consumer_groups: bool) -> impl Iterator<Item = &str> + Clone {
        let consumer_groups = self
            .consumer_groups
            .iter()
            .filter(move |_| include_consumer_groups)
            .map(|g| g.name.as_str());
        self.acl_groups
            .iter()
            .map(String::as_str)
            .chain(consumer_groups)
    }
}

/// An acl plugin's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclConfig {
    /// `allow`: when set, only consumers in one of these groups get in.
    pub allow: Vec<String>,
    /// `deny`: consumers in one of these groups are refused.
    pub deny: Vec<String>,
    /// `include_consumer_groups` (default false): a consumer's consumer groups count as
    /// its ACL groups.
    pub include_consumer_groups: bool,
}

impl AclConfig {
    /// Whether a consumer in `groups` may use the route: Kong's rule, exact group names.
    pub fn allows<'a>(&self, groups: impl Iterator<Item = &'a str> + Clone) -> bool {
        let in_any = |list: &[String]| groups.clone().any(|g| list.iter().any(|l| l == g));
        if !self.deny.is_empty() && in_any(&self.deny) {
            return false;
        }
        self.allow.is_empty() || in_any(&self.allow)
    }
}

const ACL_SHAPE: Shape = Shape::Record(&[
    ("allow", Shape::Any),
    ("deny", Shape::Any),
    ("hide_groups_header", Shape::Any),
    ("include_consumer_groups", Shape::Any),
    ("always_use_authenticated_groups", Shape::Any),
]);

impl Cx<'_> {
    /// Every consumer with its groups; a consumer group named by a consumer or naming
    /// a consumer must exist in the file.
    pub(crate) fn consumers(
        &self,
        consumers: &[ConsumerRaw],
        groups: &[ConsumerGroupRaw],
    ) -> Result<Vec<ConsumerConfig>, ConfigError> {
        let root = FieldPath::root();
        let mut by_ref: HashMap<&str, usize> = HashMap::new();
        for (gi, group) in groups.iter().enumerate() {
            let path = root.key("consumer_groups").index(gi);
            if group.name.as_deref().is_none_or(str::is_empty) {
                return Err(self.invalid(&path.key("name"), "required field missing"));
            }
            if group.plugins.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(self.invalid(
                    &path.key("plugins"),
                    "plugins scoped to a consumer group are not enforced by aigw; attach \
                     them to a route, a service or globally",
                ));
            }
            for key in [&group.name, &group.id].into_iter().flatten() {
                by_ref.insert(key, gi);
            }
        }
        let group_ref = |gi: usize| ConsumerGroupRef {
            name: groups[gi].name.clone().unwrap_or_default(),
            id: groups[gi].id.clone(),
        };
        let mut out: Vec<ConsumerConfig> = Vec::with_capacity(consumers.len());
        for (ci, raw) in consumers.iter().enumerate() {
            let path = root.key("consumers").index(ci);
            let mut acl_groups = Vec::new();
            for (ai, acl) in raw.acls.iter().flatten().enumerate() {
                match &acl.group {
                    Some(group) if !group.is_empty() => acl_groups.push(group.clone()),
                    _ => {
                        return Err(self.invalid(
                            &path.key("acls").index(ai).key("group"),
                            "required field missing",
                        ));
                    }
                }
            }
            let mut consumer_groups = Vec::new();
            for (gi, reference) in raw.groups.iter().flatten().enumerate() {
                let Some(&index) = by_ref.get(reference.0.as_str()) else {
                    return Err(self.invalid(
                        &path.key("groups").index(gi),
                        format!("no consumer group named {:?} in this file", reference.0),
                    ));
                };
                consumer_groups.push(group_ref(index));
            }
            out.push(ConsumerConfig {
                name: raw.display_name(ci),
                username: raw.username.clone(),
                id: raw.id.clone(),
                custom_id: raw.custom_id.clone(),
                acl_groups,
                consumer_groups,
            });
        }
        for (gi, group) in groups.iter().enumerate() {
            for (mi, member) in group.consumers.iter().flatten().enumerate() {
                let found = out.iter_mut().find(|c| {
                    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
                    same(&c.username, &member.username)
                        || same(&c.id, &member.id)
                        || same(&c.custom_id, &member.custom_id)
                });
                let Some(consumer) = found else {
                    return Err(self.invalid(
                        &root
                            .key("consumer_groups")
                            .index(gi)
                            .key("consumers")
                            .index(mi),
                        "no such consumer in this file (match by username, id or custom_id)",
                    ));
                };
                if !consumer
                    .consumer_groups
                    .iter()
                    .any(|g| Some(&g.name) == group.name.as_ref())
                {
                    consumer.consumer_groups.push(group_ref(gi));
                }
            }
        }
        Ok(out)
    }

    /// An acl plugin's config; Kong requires exactly one of `allow` and `deny`.
    pub(crate) fn acl(
        &self,
        base: &FieldPath,
        value: Option<&figment::value::Value>,
        raw: AclRaw,
    ) -> Result<AclConfig, ConfigError> {
        if let Some(value) = value {
            self.refuse_unknown(base, value, &ACL_SHAPE, ACL)?;
        }
        let allow = raw.allow.unwrap_or_default();
        let deny = raw.deny.unwrap_or_default();
        match (allow.is_empty(), deny.is_empty()) {
            (true, true) => {
                return Err(self.invalid(
                    base,
                    "one of allow or deny must list at least one group (Kong requires it)",
                ));
            }
            (false, false) => {
                return Err(self.invalid(
                    &base.key("deny"),
                    "only one of allow or deny may be set (Kong requires it)",
                ));
            }
            _ => {}
        }
        Ok(AclConfig {
            allow,
            deny,
            include_consumer_groups: raw.include_consumer_groups.unwrap_or(false),
        })
    }

    /// Refuses the first key of `value` that `shape` does not know, at its line: a
    /// plugin that limits or refuses requests must not run with a field it ignores.
    pub(crate) fn refuse_unknown(
        &self,
        base: &FieldPath,
        value: &figment::value::Value,
        shape: &Shape,
        plugin: &str,
    ) -> Result<(), ConfigError> {
        let mut first = None;
        schema::unknown_keys(value, shape, &mut |at, key| {
            if first.is_none() {
                first = Some(base.join_figment(at).key(key));
            }
        });
        match first {
            Some(field) => Err(self.invalid_key(
                &field,
                format!(
                    "unknown or unsupported {plugin} field; refusing to run the plugin without it"
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(allow: &[&str], deny: &[&str]) -> AclConfig {
        AclConfig {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            deny: deny.iter().map(|s| (*s).to_owned()).collect(),
            include_consumer_groups: false,
        }
    }

    #[test]
    fn allow_needs_one_group_and_deny_refuses_any() {
        let gold = ["gold", "eu"];
        assert!(acl(&["gold"], &[]).allows(gold.iter().copied()));
        assert!(!acl(&["silver"], &[]).allows(gold.iter().copied()));
        assert!(!acl(&["silver"], &[]).allows([].iter().copied()));
        assert!(!acl(&[], &["eu"]).allows(gold.iter().copied()));
        assert!(acl(&[], &["us"]).allows(gold.iter().copied()));
        assert!(acl(&[], &["us"]).allows([].iter().copied()));
    }

    fn deck(acl: &str) -> String {
        format!(
            r#"_format_version: "3.0"
consumer_groups:
- name: silver
  consumers:
  - username: bob
consumers:
- username: alice
  acls:
  - group: gold
- username: bob
  groups:
  - name: silver
services:
- name: svc
  routes:
  - name: a
    paths: [/a]
    plugins:
    - name: key-auth
    - name: acl
      config: {acl}
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - model: {{provider: bedrock, name: m}}
      route_type: llm/v1/chat
"#
        )
    }

    #[test]
    fn acl_loads_with_consumers_and_their_groups() {
        let config = crate::parse_deck("t.yaml", &deck("{allow: [gold]}")).expect("valid");
        assert_eq!(
            config.routes[0].acl,
            Some(acl(&["gold"], &[])),
            "{:?}",
            config.routes[0]
        );
        let bob = &config.consumers[1];
        assert_eq!(bob.name, "bob");
        // Named by the group and by the consumer: counted once.
        assert_eq!(bob.consumer_groups.len(), 1);
        assert_eq!(bob.acl_groups(true).collect::<Vec<_>>(), ["silver"]);
        assert!(bob.acl_groups(false).next().is_none());
    }

    #[test]
    fn acl_refuses_unknown_fields_and_both_lists_at_their_line() {
        let error = crate::parse_deck("t.yaml", &deck("{allow: [gold], allowed: [x]}"))
            .expect_err("unknown field")
            .to_string();
        assert!(
            error.starts_with("t.yaml:21:31: services[0].routes[0].plugins[1].config.allowed: unknown or unsupported acl field"),
            "{error}"
        );
        let error = crate::parse_deck("t.yaml", &deck("{allow: [gold], deny: [x]}"))
            .expect_err("both lists")
            .to_string();
        assert!(error.contains("only one of allow or deny"), "{error}");
        let error = crate::parse_deck("t.yaml", &deck("{}"))
            .expect_err("no list")
            .to_string();
        assert!(error.contains("one of allow or deny"), "{error}");
        let missing = deck("{allow: [gold]}").replace(
            "  groups:\n  - name: silver\n",
            "  groups:\n  - name: bronze\n",
        );
        let error = crate::parse_deck("t.yaml", &missing)
            .expect_err("unknown group")
            .to_string();
        assert!(
            error.contains("consumers[1].groups[0]: no consumer group named \"bronze\""),
            "{error}"
        );
    }
}
