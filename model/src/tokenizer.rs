//! Tokenizer wrapper: the model tokenizer's own BOS behaviour by default, or an explicit
//! `prepend_bos` override (TransformerLens prepends BOS by default; Hugging Face follows the
//! model), so every caller can say exactly which token ids it runs.

use crate::error::{ModelError, Result};

/// Token ids and each token's byte span in the text.
pub type Encoding = (Vec<u32>, Vec<(usize, usize)>);

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    adds_bos: bool,
    origin: String,
}

impl Tokenizer {
    /// Wraps a tokenizer; `bos` is the model's BOS id if it has one. Whether the tokenizer
    /// adds BOS by itself is found by encoding a probe text with and without special tokens.
    pub fn new(inner: tokenizers::Tokenizer, bos: Option<u32>, origin: &str) -> Result<Self> {
        let mut tok = Self {
            inner,
            bos,
            adds_bos: false,
            origin: origin.to_string(),
        };
        let with = tok.raw_encode("a", true)?;
        let without = tok.raw_encode("a", false)?;
        tok.adds_bos = with.len() > without.len() && bos.is_some() && with.first() == bos.as_ref();
        Ok(tok)
    }

    pub fn from_file(path: &std::path::Path, bos: Option<u32>) -> Result<Self> {
        let origin = path.display().to_string();
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        let bos = bos.or_else(|| {
            ["<s>", "<|begin_of_text|>", "<|endoftext|>"]
                .iter()
                .find_map(|t| inner.token_to_id(t))
        });
        Self::new(inner, bos, &origin)
    }

    fn raw_encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| ModelError::Tokenizer {
                origin: self.origin.clone(),
                reason: format!("cannot encode {text:?}: {e}"),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Whether the tokenizer adds a BOS token by itself.
    pub fn adds_bos(&self) -> bool {
        self.adds_bos
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// Token ids of `text`. `prepend_bos: None` follows the tokenizer's own behaviour.
    pub fn encode(&self, text: &str, prepend_bos: Option<bool>) -> Result<Vec<u32>> {
        Ok(self.encode_with_offsets(text, prepend_bos)?.0)
    }

    /// Token ids with each token's byte span in `text` (`(0, 0)` for an added BOS).
    pub fn encode_with_offsets(&self, text: &str, prepend_bos: Option<bool>) -> Result<Encoding> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer {
                origin: self.origin.clone(),
                reason: format!("cannot encode {text:?}: {e}"),
            })?;
        let mut ids = enc.get_ids().to_vec();
        let mut offsets = enc.get_offsets().to_vec();
        let has_bos = self.adds_bos && ids.first() == self.bos.as_ref();
        match prepend_bos {
            None => {}
            Some(false) if has_bos => {
                ids.remove(0);
                offsets.remove(0);
            }
            Some(false) => {}
            Some(true) if has_bos => {}
            Some(true) => {
                let bos = self.bos.ok_or_else(|| ModelError::Tokenizer {
                    origin: self.origin.clone(),
                    reason: "prepend_bos is set but the model has no BOS token".into(),
                })?;
                ids.insert(0, bos);
                offsets.insert(0, (0, 0));
            }
        }
        Ok((ids, offsets))
    }

    /// The text of one token as it reads in context (byte-level pieces decoded).
    pub fn token_text(&self, id: u32) -> String {
        self.inner
            .decode(&[id], false)
            .ok()
            .or_else(|| self.inner.id_to_token(id))
            .unwrap_or_else(|| format!("<{id}>"))
    }

    /// The text of a sequence of tokens (special tokens kept, as `token_text` keeps them).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| ModelError::Tokenizer {
                origin: self.origin.clone(),
                reason: format!("cannot decode {ids:?}: {e}"),
            })
    }

    /// The id of a single-token string, or every token it splits into.
    pub fn single_token(&self, text: &str) -> std::result::Result<u32, Vec<(u32, String)>> {
        match self.raw_encode(text, false) {
            Ok(ids) if ids.len() == 1 => Ok(ids[0]),
            Ok(ids) => Err(ids.iter().map(|&i| (i, self.token_text(i))).collect()),
            Err(_) => Err(Vec::new()),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
