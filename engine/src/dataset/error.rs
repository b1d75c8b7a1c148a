//! Errors of dataset construction and tokenization; each names the file, line, field, slot or
//! template at fault.

use std::path::PathBuf;

/// Why a dataset could not be built or tokenized.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A dataset file could not be read.
    #[error("cannot read dataset file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A line of a JSONL file is malformed (bad JSON, unknown or missing field, bad value).
    #[error("{path}:{line}: {message}")]
    Jsonl {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A template's text cannot be parsed (unbalanced braces, empty slot name).
    #[error("template {template:?}: {message}")]
    TemplateSyntax { template: String, message: String },

    /// A filler names a slot the template does not have.
    #[error("template {template:?} has no slot {slot:?} (its slots: {known})")]
    UnknownSlot {
        template: String,
        slot: String,
        known: String,
    },

    /// A slot of the template has no filler.
    #[error("template {template:?}: no filler for slot {slot:?}")]
    MissingSlot { template: String, slot: String },

    /// A filler was given for a slot the template fixes.
    #[error("template {template:?}: slot {slot:?} is fixed to {fixed:?} and cannot be filled")]
    FixedSlot {
        template: String,
        slot: String,
        fixed: String,
    },

    /// Two pairs share an id.
    #[error("duplicate pair id {id:?}{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    DuplicateId { id: String, hint: Option<String> },

    /// An option names something the dataset does not have (a template, profession, trait, …).
    #[error("dataset {dataset}: unknown {field} {value:?}; known: {known}")]
    UnknownOption {
        dataset: String,
        field: String,
        value: String,
        known: String,
    },

    /// An option value is invalid for another reason.
    #[error("dataset {dataset}: option {field}: {message}")]
    BadOption {
        dataset: String,
        field: String,
        message: String,
    },

    /// The option needs the model's tokenizer (e.g. to match token counts).
    #[error("dataset {dataset}: {option} needs the model tokenizer; call {function} with one")]
    NeedsTokenizer {
        dataset: String,
        option: String,
        function: String,
    },

    /// The dataset (after filtering) has no pairs.
    #[error("dataset {dataset} has no pairs{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Empty {
        dataset: String,
        reason: Option<String>,
    },

    /// A prompt tokenized to nothing: there is no position to measure at.
    #[error(
        "pair {id:?}: the {which} prompt {text:?} has no tokens (no BOS is prepended for this \
         model); give it some text, or set `prepend_bos = true` in the spec"
    )]
    EmptyPrompt {
        id: String,
        which: &'static str,
        text: String,
    },

    /// The tokenizer failed on a prompt.
    #[error("pair {id:?}: cannot tokenize {text:?}: {source}")]
    Tokenizer {
        id: String,
        text: String,
        #[source]
        source: Box<patchsweep_model::ModelError>,
    },
}
