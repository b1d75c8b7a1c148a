//! Greedy generation, optionally with a patch at the prompt's positions: the paper's
//! generation check (after patching early MLPs the continuation keeps the profession and
//! switches the pronoun). The prompt runs once through the hooked forward with the patch
//! hook, recording every block's keys and values; each new token then runs alone on that
//! cache, unhooked, so the patch acts through the prompt's (patched) keys and values only.
//! Generation never stops early: it always gives `tokens` tokens (an end-of-text token is a
//! token like any other).

use std::collections::HashSet;

use candle_core::{DType, D};
use patchsweep_model::{
    Forward, Hook, HookPoint, HookedTransformer, Input, NoHook, Patcher, Unembed,
};

use crate::activation::masked_patches;
use crate::error::{EngineError, Result};
use crate::experiment::{Direction, PairInput};
use crate::grid::{Cell, Site};
use crate::runs::{cache_runs, RunCache};
use crate::stacked::{row_index, Stacked};

/// Which prompt of a pair a generation continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationRun {
    Clean,
    Corrupt,
}

impl GenerationRun {
    /// The name as stored (`generations.run`).
    pub fn name(&self) -> &'static str {
        match self {
            GenerationRun::Clean => "clean",
            GenerationRun::Corrupt => "corrupt",
        }
    }
}

/// One greedy continuation of a pair's prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PairGeneration {
    /// The cell patched at the prompt's positions (its key's component, `pathway:NAME`),
    /// or `None` for the unpatched prompt.
    pub cell: Option<String>,
    /// The prompt continued; a patched one takes the other prompt's values.
    pub run: GenerationRun,
    /// The generated token ids (the prompt not included).
    pub tokens: Vec<u32>,
}

/// The greedy continuation of each prompt (all of one length, run as one batch) by
/// `tokens` tokens. `prompt_hook` sees the prompt's forward only; the new tokens run
/// unhooked on the recorded keys and values.
pub fn greedy(
    model: &HookedTransformer,
    prompts: &[Vec<u32>],
    tokens: usize,
    prompt_hook: &mut dyn Hook,
) -> Result<Vec<Vec<u32>>> {
    let len = prompts.first().map_or(0, Vec::len);
    if let Some(most) = model.cfg.max_positions {
        if len + tokens > most {
            return Err(EngineError::Generation(format!(
                "a prompt of {len} tokens and {tokens} generated tokens exceed the model's \
                 {most} positions (max_position_embeddings)"
            )));
        }
    }
    let mut out: Vec<Vec<u32>> = vec![Vec::with_capacity(tokens); prompts.len()];
    if tokens == 0 {
        return Ok(out);
    }
    let input = model.tokens_tensor(prompts)?;
    let step = Forward {
        unembed: Unembed::Last,
        record_kv: true,
        ..Forward::default()
    };
    let mut pass = model.forward(Input::Tokens(&input), prompt_hook, step)?;
    loop {
        let logits = pass
            .logits
            .as_ref()
            .ok_or_else(|| EngineError::Generation("the forward pass returned no logits".into()))?;
        let next: Vec<u32> = logits
            .to_dtype(DType::F32)?
            .squeeze(1)?
            .argmax(D::Minus1)?
            .to_vec1()?;
        for (row, &t) in out.iter_mut().zip(&next) {
            row.push(t);
        }
        if out[0].len() == tokens {
            return Ok(out);
        }
        let column: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
        let input = model.tokens_tensor(&column)?;
        let past = std::mem::take(&mut pass.kv);
        pass = model.forward(
            Input::Tokens(&input),
            &mut NoHook,
            Forward {
                past: Some(&past),
                ..step
            },
        )?;
    }
}

/// The generation check of one pair: greedy continuations of the clean and the corrupted
/// prompt, and of the base prompt with each cell patched from the source prompt's run at
/// the prompt's positions (`noise`: the clean prompt with corrupted values; `denoise`: the
/// corrupted prompt with clean values), all in one batch.
pub fn pair_generations(
    model: &HookedTransformer,
    pair: &PairInput,
    cells: &[Cell],
    direction: Direction,
    tokens: usize,
) -> Result<Vec<PairGeneration>> {
    let (base, base_ids, source_ids) = match direction {
        Direction::Noise => (GenerationRun::Clean, &pair.clean_ids, &pair.corrupt_ids),
        Direction::Denoise => (GenerationRun::Corrupt, &pair.corrupt_ids, &pair.clean_ids),
    };
    let hooks: HashSet<HookPoint> = cells
        .iter()
        .flat_map(|c| c.sites.iter().map(Site::hook))
        .collect();
    let source: RunCache = cache_runs(model, &[source_ids], &[&pair.metric], &hooks)?.remove(0);
    let mut prompts = vec![pair.clean_ids.clone(), pair.corrupt_ids.clone()];
    let mut sites: Vec<&[Site]> = vec![&[], &[]];
    for cell in cells {
        prompts.push(base_ids.clone());
        sites.push(cell.sites.as_slice());
    }
    let source_rows = row_index(vec![0; sites.len()], model.device())?;
    let patches = masked_patches(
        &mut Stacked::new(vec![&source]),
        &source_rows,
        &sites,
        0,
        base_ids.len(),
    )?;
    let mut patcher = Patcher::new(&[]).with_masked(&patches);
    let generated = greedy(model, &prompts, tokens, &mut patcher)?;
    let runs = [GenerationRun::Clean, GenerationRun::Corrupt]
        .into_iter()
        .map(|run| (None, run))
        .chain(cells.iter().map(|c| (Some(c.key.component.clone()), base)));
    Ok(runs
        .zip(generated)
        .map(|((cell, run), tokens)| PairGeneration { cell, run, tokens })
        .collect())
}
