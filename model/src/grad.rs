//! Gradients of a scalar metric with respect to hook points, with candle's autograd.
//!
//! At each requested hook point the forward pass adds a zero-valued variable to the
//! activation; the gradient with respect to that variable is the gradient with respect to
//! the activation, and the graph stays whole, so several points can be differentiated at
//! once (attribution patching needs every component from one backward pass).

use std::collections::{HashMap, HashSet};

use candle_core::{Tensor, Var};

use crate::error::{ModelError, Result};
use crate::hooks::{Hook, HookPoint};
use crate::transformer::{Forward, HookedTransformer, Input, Unembed};

/// Activations and metric gradients at the requested hook points.
#[derive(Debug)]
pub struct Gradients {
    /// The metric's value on this run.
    pub metric: f32,
    /// The logits of the run (`[batch, 1, vocab]`, last position only).
    pub logits: Tensor,
    pub activations: HashMap<HookPoint, Tensor>,
    pub grads: HashMap<HookPoint, Tensor>,
}

struct GradHook<'a> {
    wanted: HashSet<HookPoint>,
    inner: &'a mut dyn Hook,
    vars: HashMap<HookPoint, Var>,
    activations: HashMap<HookPoint, Tensor>,
}

impl Hook for GradHook<'_> {
    fn on(&mut self, point: HookPoint, value: Tensor) -> Result<Tensor> {
        let value = self.inner.on(point, value)?;
        if !self.wanted.contains(&point) {
            return Ok(value);
        }
        let var = Var::zeros(value.dims(), value.dtype(), value.device())?;
        let out = (&value + var.as_tensor())?;
        self.activations.insert(point, value.detach());
        self.vars.insert(point, var);
        Ok(out)
    }
}

impl HookedTransformer {
    /// Runs `tokens` with `hook` (patches, caching) and returns the gradient of
    /// `metric(last_position_logits)` (a scalar) at each of `points`.
    pub fn gradients(
        &self,
        tokens: &Tensor,
        points: &[HookPoint],
        hook: &mut dyn Hook,
        metric: &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Gradients> {
        let mut gh = GradHook {
            wanted: points.iter().copied().collect(),
            inner: hook,
            vars: HashMap::new(),
            activations: HashMap::new(),
        };
        let opts = Forward {
            unembed: Unembed::Last,
            differentiable: true,
            ..Forward::default()
        };
        let out = self.forward(Input::Tokens(tokens), &mut gh, opts)?;
        let logits = out
            .logits
            .ok_or_else(|| ModelError::BadInput("no logits".into()))?;
        let value = metric(&logits)?;
        if value.elem_count() != 1 {
            return Err(ModelError::BadInput(format!(
                "the metric must be a scalar, got shape {:?}",
                value.dims()
            )));
        }
        let metric_value = value
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?[0];
        let store = value.backward()?;
        let mut grads = HashMap::new();
        for (point, var) in &gh.vars {
            let g = match store.get(var.as_tensor()) {
                Some(g) => g.clone(),
                None => var.as_tensor().zeros_like()?,
            };
            grads.insert(*point, g);
        }
        Ok(Gradients {
            metric: metric_value,
            logits: logits.detach(),
            activations: gh.activations,
            grads,
        })
    }
}
