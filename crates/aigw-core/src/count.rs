//! Counting a prompt's input tokens without answering it, as a driver capability beside
//! chat: a provider that can count (Bedrock's CountTokens) offers a [`CountTokensService`]
//! from the same [`ChatRequest`] its chat driver takes, so the count is of exactly what a
//! chat call would send.

use tower::util::BoxCloneSyncService;

use crate::{ChatRequest, Error};

/// A provider's token counter, boxed at the crate boundary like [`crate::BoxDriver`].
pub type CountTokensService = BoxCloneSyncService<ChatRequest, u64, Error>;
