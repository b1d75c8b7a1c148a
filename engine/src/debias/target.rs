//! The components a debiasing intervention acts on: attention heads, whole attention
//! outputs and MLP outputs, each at one layer, optionally restricted to one position label.
//!
//! Written as in the results tables: `head L3H2`, `attn_out L4`, `mlp_out L2`, with an
//! optional position label after `@` (`head L3H2@end`, `mlp_out L2@subject`). Without a
//! label the component is meant at every position.

use std::fmt;
use std::str::FromStr;

use patchsweep_model::{HookPoint, ModelConfig};

use super::error::{DebiasError, Result};
use crate::grid::Component;

/// What kind of component a [`Target`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    /// One attention head's output (`head_out` in sweeps; `hook_z` of one head).
    Head,
    /// A layer's whole attention output (`hook_attn_out`).
    AttnOut,
    /// A layer's MLP output (`hook_mlp_out`).
    MlpOut,
}

impl TargetKind {
    /// The kind a sweep component maps to; only `head_out`, `attn_out` and `mlp_out` are
    /// things one can ablate, steer at or fine-tune.
    pub fn from_component(c: Component) -> Result<Self> {
        match c {
            Component::HeadOut => Ok(TargetKind::Head),
            Component::AttnOut => Ok(TargetKind::AttnOut),
            Component::MlpOut => Ok(TargetKind::MlpOut),
            other => Err(DebiasError::Component {
                spec: other.name().to_string(),
                reason: "not a debias target; use head_out, attn_out or mlp_out".into(),
            }),
        }
    }

    /// The name used in descriptions: `head`, `attn_out`, `mlp_out`.
    pub fn name(&self) -> &'static str {
        match self {
            TargetKind::Head => "head",
            TargetKind::AttnOut => "attn_out",
            TargetKind::MlpOut => "mlp_out",
        }
    }

    /// The sweep component this kind is measured as.
    pub fn component(&self) -> Component {
        match self {
            TargetKind::Head => Component::HeadOut,
            TargetKind::AttnOut => Component::AttnOut,
            TargetKind::MlpOut => Component::MlpOut,
        }
    }

    /// Parses `head`, `head_out`, `attn_out` or `mlp_out`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "head" | "head_out" => Some(TargetKind::Head),
            "attn_out" => Some(TargetKind::AttnOut),
            "mlp_out" => Some(TargetKind::MlpOut),
            _ => None,
        }
    }
}

/// One component to intervene on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub kind: TargetKind,
    pub layer: usize,
    /// The head, for [`TargetKind::Head`] only.
    pub head: Option<usize>,
    /// A position label (`subject`, `end`, `last`) or `None` for every position.
    pub position: Option<String>,
}

impl Target {
    /// The hook point whose value the component writes.
    pub fn hook(&self) -> HookPoint {
        self.kind.component().hook(self.layer)
    }

    /// The same component without its position (what weights and controls are keyed by).
    pub fn site(&self) -> (TargetKind, usize, Option<usize>) {
        (self.kind, self.layer, self.head)
    }

    /// Checks layer and head against the model.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        let bad = |reason: String| DebiasError::Component {
            spec: self.to_string(),
            reason,
        };
        if self.layer >= cfg.n_layers {
            return Err(bad(format!(
                "layer {} does not exist (the model has {})",
                self.layer, cfg.n_layers
            )));
        }
        match (self.kind, self.head) {
            (TargetKind::Head, None) => Err(bad("a head component needs a head".into())),
            (TargetKind::Head, Some(h)) if h >= cfg.n_heads => Err(bad(format!(
                "head {h} does not exist (the model has {} heads)",
                cfg.n_heads
            ))),
            (TargetKind::AttnOut | TargetKind::MlpOut, Some(_)) => {
                Err(bad(format!("{} has no heads", self.kind.name())))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} L{}", self.kind.name(), self.layer)?;
        if let Some(h) = self.head {
            write!(f, "H{h}")?;
        }
        if let Some(p) = &self.position {
            write!(f, "@{p}")?;
        }
        Ok(())
    }
}

impl FromStr for Target {
    type Err = DebiasError;

    /// `head L3H2`, `attn_out L4`, `mlp_out L2@subject` (spaces around `@` allowed).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| DebiasError::Component {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (body, position) = match s.split_once('@') {
            Some((b, p)) if !p.trim().is_empty() => (b.trim(), Some(p.trim().to_string())),
            Some(_) => return Err(bad("nothing after '@' (expected a position label)")),
            None => (s.trim(), None),
        };
        let (kind, coords) = body
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `KIND L<layer>[H<head>]`, e.g. `head L3H2`"))?;
        let kind = TargetKind::parse(kind.trim())
            .ok_or_else(|| bad("unknown kind; use head, attn_out or mlp_out"))?;
        let coords = coords
            .trim()
            .strip_prefix('L')
            .ok_or_else(|| bad("the layer must be written L<n>"))?;
        let (layer, head) = match coords.split_once('H') {
            Some((l, h)) => (l, Some(h)),
            None => (coords, None),
        };
        let layer: usize = layer.parse().map_err(|_| bad("layer is not a number"))?;
        let head = match head {
            Some(h) => Some(
                h.parse::<usize>()
                    .map_err(|_| bad("head is not a number"))?,
            ),
            None => None,
        };
        match (kind, head) {
            (TargetKind::Head, None) => return Err(bad("a head needs H<n>, e.g. `head L3H2`")),
            (TargetKind::AttnOut | TargetKind::MlpOut, Some(_)) => {
                return Err(bad("only `head` components take H<n>"))
            }
            _ => {}
        }
        Ok(Target {
            kind,
            layer,
            head,
            position,
        })
    }
}

/// The targets as one description: `head L3H2@end, mlp_out L2@subject`.
pub fn describe(targets: &[Target]) -> String {
    if targets.is_empty() {
        return "(none)".to_string();
    }
    targets
        .iter()
        .map(Target::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_errors_name_the_problem() {
        for s in [
            "head L3H2",
            "attn_out L4",
            "mlp_out L2@subject",
            "head L0H1@end",
        ] {
            let t: Target = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        let t: Target = "head_out L3H2 @ last".parse().unwrap();
        assert_eq!(t.to_string(), "head L3H2@last");
        for (s, want) in [
            ("head L3", "needs H<n>"),
            ("mlp_out L2H1", "only `head`"),
            ("resid_pre L1", "unknown kind"),
            ("head 3H2", "L<n>"),
            ("mlp_out Lx", "not a number"),
            ("mlp_out L1@", "nothing after"),
        ] {
            let err = s.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(s), "{s}: {err}");
        }
    }
}
