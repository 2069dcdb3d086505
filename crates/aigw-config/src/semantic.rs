//! What the `semantic` balancing algorithm reads of ai-proxy-advanced's `config`: the
//! `embeddings` model that turns text into vectors and the `vectordb` settings (vector
//! length, distance metric, threshold). Kong keeps the targets' description vectors in
//! Redis or pgvector; aigw, with a handful of targets a route, keeps them in memory and
//! searches them exactly, so `vectordb.strategy` and its connection block are read but no
//! connection is made (`aigw check` says so).

use serde::Deserialize;

use crate::ConfigError;
use crate::enums::Provider;
use crate::model::{ModelOptions, TargetAuth};
use crate::path::FieldPath;
use crate::raw::{AuthRaw, Int, ModelRaw, Num};
use crate::validate::Cx;

/// The description that marks the target serving prompts close to no other description.
pub const CATCHALL: &str = "CATCHALL";

/// `config.embeddings` and `config.vectordb`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticConfig {
    /// `embeddings.model.provider`.
    pub provider: Provider,
    /// `embeddings.model.name`.
    pub model: String,
    /// `embeddings.model.options` (region, `upstream_url`, ...).
    pub options: ModelOptions,
    /// `embeddings.auth`.
    pub auth: TargetAuth,
    /// `vectordb.dimensions`.
    pub dimensions: usize,
    /// `vectordb.distance_metric`.
    pub distance_metric: DistanceMetric,
    /// `vectordb.threshold`: the largest distance at which a description still matches.
    pub threshold: f64,
    /// `vectordb.strategy` as written (`redis`, `pgvector`); aigw searches in memory.
    pub strategy: String,
}

/// `vectordb.distance_metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistanceMetric {
    /// `cosine`: 1 − cosine similarity, 0 for the same direction, up to 2.
    Cosine,
    /// `euclidean`: the straight-line distance.
    Euclidean,
}

impl DistanceMetric {
    /// Kong's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DistanceMetric::Cosine => "cosine",
            DistanceMetric::Euclidean => "euclidean",
        }
    }
}

/// `config.embeddings`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct EmbeddingsRaw {
    model: Option<ModelRaw>,
    auth: Option<AuthRaw>,
}

/// `config.vectordb`.
#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping")]
pub(crate) struct VectordbRaw {
    strategy: Option<String>,
    dimensions: Option<Int>,
    distance_metric: Option<String>,
    threshold: Option<Num>,
}

impl Cx<'_> {
    /// The semantic settings of a plugin whose algorithm is `semantic`: both blocks are
    /// required then, as Kong requires them.
    pub(crate) fn semantic(
        &self,
        base: &FieldPath,
        embeddings: Option<EmbeddingsRaw>,
        vectordb: Option<VectordbRaw>,
    ) -> Result<SemanticConfig, ConfigError> {
        let at = base.key("embeddings");
        let embeddings = embeddings.ok_or_else(|| {
            self.invalid(
                &at,
                "required field missing: the semantic algorithm embeds prompts with this model",
            )
        })?;
        let model_at = at.key("model");
        let model = embeddings
            .model
            .ok_or_else(|| self.invalid(&model_at, "required field missing"))?;
        let provider = model
            .provider
            .ok_or_else(|| self.invalid(&model_at.key("provider"), "required field missing"))?;
        if !matches!(provider, Provider::Bedrock | Provider::OpenAi) {
            return Err(self.invalid(
                &model_at.key("provider"),
                format!(
                    "{:?} embeddings are not supported yet (supported: bedrock, openai)",
                    provider.as_str()
                ),
            ));
        }
        let name = match model.name {
            Some(name) if !name.trim().is_empty() => name,
            _ => return Err(self.invalid(&model_at.key("name"), "required field missing")),
        };
        let options = self.options(&model_at.key("options"), model.options.unwrap_or_default())?;
        let auth = self.auth(&at.key("auth"), embeddings.auth.unwrap_or_default())?;

        let at = base.key("vectordb");
        let vectordb = vectordb.ok_or_else(|| self.invalid(&at, "required field missing"))?;
        let strategy = match vectordb.strategy {
            Some(s) if s == "redis" || s == "pgvector" => s,
            Some(s) => {
                return Err(self.invalid(
                    &at.key("strategy"),
                    format!("unknown value {s:?}, expected one of redis, pgvector"),
                ));
            }
            None => return Err(self.invalid(&at.key("strategy"), "required field missing")),
        };
        let dimensions = match vectordb.dimensions {
            Some(Int(d)) if d > 0 && d <= 65_536 => d as usize,
            Some(Int(d)) => {
                return Err(self.invalid(
                    &at.key("dimensions"),
                    format!("must be 1 to 65536, got {d}"),
                ));
            }
            None => return Err(self.invalid(&at.key("dimensions"), "required field missing")),
        };
        let distance_metric = match vectordb.distance_metric.as_deref() {
            Some("cosine") => DistanceMetric::Cosine,
            Some("euclidean") => DistanceMetric::Euclidean,
            Some(other) => {
                return Err(self.invalid(
                    &at.key("distance_metric"),
                    format!("unknown value {other:?}, expected one of cosine, euclidean"),
                ));
            }
            None => {
                return Err(self.invalid(&at.key("distance_metric"), "required field missing"));
            }
        };
        let threshold = match vectordb.threshold {
            Some(Num(t)) if t.is_finite() && t >= 0.0 => t,
            Some(Num(t)) => {
                return Err(self.invalid(
                    &at.key("threshold"),
                    format!("must be a number of at least 0, got {t}"),
                ));
            }
            None => return Err(self.invalid(&at.key("threshold"), "required field missing")),
        };
        Ok(SemanticConfig {
            provider,
            model: name,
            options,
            auth,
            dimensions,
            distance_metric,
            threshold,
            strategy,
        })
    }
}
