//! The forms `layers` and `positions` take in a spec, with errors that show those forms
//! (an untagged enum would only say "data did not match any variant").

use std::fmt;

use patchsweep_engine::grid::PositionRef;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

const LAYERS_FORMS: &str =
    "\"all\", a range \"A..B\" (B excluded) or \"A..=B\", or a list of layers such as [0, 5]";
const POSITIONS_FORMS: &str = "\"all\", \"joint\", one position label such as \"subject\", or a \
     list of indices (negative from the end) and labels such as [-1, \"subject\"]";

/// The error for a bare number where a selection of `what`s is expected (`layers = 3`).
fn single_number<E: de::Error>(v: i64, what: &str, forms: &str) -> E {
    E::custom(format!(
        "a single number ({v}) is not a {what} selection; expected {forms} (one {what}: [{v}])"
    ))
}

/// `"all"`, `"A..B"` (B excluded), `"A..=B"`, or a list of layers.
#[derive(Debug, Clone)]
pub enum LayersSpec {
    Text(String),
    List(Vec<usize>),
}

/// `"all"`, `"joint"`, one label, or a list of indices (negative from the end) and labels.
#[derive(Debug, Clone)]
pub enum PositionsSpec {
    Text(String),
    List(Vec<PositionRef>),
}

struct LayersVisitor;

impl<'de> Visitor<'de> for LayersVisitor {
    type Value = LayersSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{LAYERS_FORMS}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<LayersSpec, E> {
        Ok(LayersSpec::Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<LayersSpec, E> {
        Err(single_number(v, "layer", LAYERS_FORMS))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<LayersSpec, E> {
        self.visit_i64(v as i64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LayersSpec, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Layer>()? {
            out.push(v.0);
        }
        Ok(LayersSpec::List(out))
    }
}

/// One layer in a list: a non-negative integer, with an error that says so.
struct Layer(usize);

struct LayerVisitor;

impl Visitor<'_> for LayerVisitor {
    type Value = Layer;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a layer number (0, 1, 2, ...)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Layer, E> {
        usize::try_from(v)
            .map(Layer)
            .map_err(|_| E::custom(format!("layer {v} is too large")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Layer, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("layer {v} is negative")))
            .and_then(|v| self.visit_u64(v))
    }
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LayerVisitor)
    }
}

impl<'de> Deserialize<'de> for LayersSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LayersVisitor)
    }
}

struct PositionsVisitor;

impl<'de> Visitor<'de> for PositionsVisitor {
    type Value = PositionsSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{POSITIONS_FORMS}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PositionsSpec, E> {
        Ok(PositionsSpec::Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PositionsSpec, E> {
        Err(single_number(v, "position", POSITIONS_FORMS))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PositionsSpec, E> {
        self.visit_i64(v as i64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PositionsSpec, A::Error> {
        let mut out = Vec::new();
        while let Some(p) = seq.next_element::<PositionRef>()? {
            out.push(p);
        }
        Ok(PositionsSpec::List(out))
    }
}

impl<'de> Deserialize<'de> for PositionsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PositionsVisitor)
    }
}

const HEADS_FORMS: &str = "\"all\" or a list of heads such as [0, 3]";

/// `"all"` or a list of heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadsSpec {
    All,
    List(Vec<usize>),
}

struct HeadsVisitor;

impl<'de> Visitor<'de> for HeadsVisitor {
    type Value = HeadsSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{HEADS_FORMS}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<HeadsSpec, E> {
        if v == "all" {
            Ok(HeadsSpec::All)
        } else {
            Err(E::custom(format!("{v:?} is not {HEADS_FORMS}")))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeadsSpec, E> {
        Err(single_number(v, "head", HEADS_FORMS))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeadsSpec, E> {
        self.visit_i64(v as i64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeadsSpec, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Layer>()? {
            out.push(v.0);
        }
        Ok(HeadsSpec::List(out))
    }
}

impl<'de> Deserialize<'de> for HeadsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeadsVisitor)
    }
}
