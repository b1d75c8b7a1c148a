//! A small SVG writer and the colour scales. Every chart is drawn as plain SVG shapes and
//! text (no gradients, ids or scripts), so the same string is a standalone `.svg` file, an
//! inline figure in the HTML report, and the input of the rasterizer.

use std::fmt::Write;

/// The font every chart asks for; the rasterizer embeds it, browsers fall back to theirs.
pub const FONT_FAMILY: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

/// An SVG document under construction, in user units (= CSS pixels).
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// Horizontal anchoring of a text.
#[derive(Clone, Copy)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        let mut svg = Svg {
            width,
            height,
            body: String::new(),
        };
        svg.rect(0.0, 0.0, width, height, "#ffffff", None);
        svg
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, stroke: Option<&str>) {
        let stroke = stroke.map_or(String::new(), |s| {
            format!(" stroke=\"{s}\" stroke-width=\"0.6\"")
        });
        let _ = writeln!(
            self.body,
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{fill}\"{stroke}/>"
        );
    }

    /// A rectangle with a tooltip (`<title>`), shown by browsers on hover.
    pub fn rect_titled(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, title: &str) {
        let _ = writeln!(
            self.body,
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{fill}\"><title>{}</title></rect>",
            escape(title)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            "<line x1=\"{x1:.2}\" y1=\"{y1:.2}\" x2=\"{x2:.2}\" y2=\"{y2:.2}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>"
        );
    }

    pub fn dashed_line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
        let _ = writeln!(
            self.body,
            "<line x1=\"{x1:.2}\" y1=\"{y1:.2}\" x2=\"{x2:.2}\" y2=\"{y2:.2}\" stroke=\"{stroke}\" stroke-width=\"1\" stroke-dasharray=\"4 3\"/>"
        );
    }

    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: &str, opacity: f64) {
        let _ = writeln!(
            self.body,
            "<circle cx=\"{cx:.2}\" cy=\"{cy:.2}\" r=\"{r}\" fill=\"{fill}\" fill-opacity=\"{opacity}\"/>"
        );
    }

    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, content: &str) {
        self.styled(x, y, size, anchor, content, "#222222", "normal");
    }

    pub fn bold(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, content: &str) {
        self.styled(x, y, size, anchor, content, "#111111", "bold");
    }

    /// Text in a given colour, e.g. white on dark cells.
    pub fn coloured(&mut self, x: f64, y: f64, size: f64, content: &str, fill: &str) {
        self.styled(x, y, size, Anchor::Middle, content, fill, "normal");
    }

    /// Centred grey text, for second tick lines.
    pub fn grey(&mut self, x: f64, y: f64, size: f64, content: &str) {
        self.styled(x, y, size, Anchor::Middle, content, "#666666", "normal");
    }

    #[allow(clippy::too_many_arguments)]
    fn styled(
        &mut self,
        x: f64,
        y: f64,
        size: f64,
        anchor: Anchor,
        content: &str,
        fill: &str,
        weight: &str,
    ) {
        let _ = writeln!(
            self.body,
            "<text x=\"{x:.2}\" y=\"{y:.2}\" font-size=\"{size}\" text-anchor=\"{}\" fill=\"{fill}\" font-weight=\"{weight}\">{}</text>",
            anchor.name(),
            escape(content)
        );
    }

    /// Text turned 90° counter-clockwise about (x, y), for vertical axis titles.
    pub fn vertical_text(&mut self, x: f64, y: f64, size: f64, content: &str) {
        let _ = writeln!(
            self.body,
            "<text x=\"{x:.2}\" y=\"{y:.2}\" font-size=\"{size}\" text-anchor=\"middle\" fill=\"#222222\" transform=\"rotate(-90 {x:.2} {y:.2})\">{}</text>",
            escape(content)
        );
    }

    /// Text turned `degrees` clockwise about its anchor (x, y), anchored at its end.
    pub fn rotated_text(&mut self, x: f64, y: f64, size: f64, degrees: f64, content: &str) {
        let _ = writeln!(
            self.body,
            "<text x=\"{x:.2}\" y=\"{y:.2}\" font-size=\"{size}\" text-anchor=\"end\" fill=\"#222222\" transform=\"rotate({degrees} {x:.2} {y:.2})\">{}</text>",
            escape(content)
        );
    }

    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT_FAMILY}\">\n{}</svg>\n",
            self.body,
            w = self.width.ceil(),
            h = self.height.ceil(),
        )
    }
}

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Stops of ColorBrewer's RdBu (reversed): blue for negative, white at 0, red for positive.
const DIVERGING: [(f64, [u8; 3]); 9] = [
    (-1.0, [33, 102, 172]),
    (-0.75, [67, 147, 195]),
    (-0.5, [146, 197, 222]),
    (-0.25, [209, 229, 240]),
    (0.0, [247, 247, 247]),
    (0.25, [253, 219, 199]),
    (0.5, [244, 165, 130]),
    (0.75, [214, 96, 77]),
    (1.0, [178, 24, 43]),
];

/// The diverging colour of `value` on a scale from `-limit` (blue) through 0 (white) to
/// `+limit` (red); values beyond the limit take the end colours.
pub fn diverging(value: f64, limit: f64) -> String {
    let t = if limit > 0.0 && value.is_finite() {
        (value / limit).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let k = DIVERGING
        .windows(2)
        .position(|w| t <= w[1].0)
        .unwrap_or(DIVERGING.len() - 2);
    let (t0, c0) = DIVERGING[k];
    let (t1, c1) = DIVERGING[k + 1];
    let f = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(c0[0], c1[0]),
        mix(c0[1], c1[1]),
        mix(c0[2], c1[2])
    )
}

/// Whether text on this diverging colour should be white (dark cells) or black.
pub fn dark(value: f64, limit: f64) -> bool {
    limit > 0.0 && (value / limit).abs() > 0.6
}

/// Categorical colours (Tableau 10) for series.
pub const CATEGORICAL: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// About how wide `text` is at `size` px in a DejaVu-like sans font (for layout only).
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// A short number for ticks: [`super::number::sig3_trimmed`] with a typographic minus.
pub fn short_number(v: f64) -> String {
    super::number::sig3_trimmed(v).replace('-', "\u{2212}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_is_white_at_zero_blue_below_red_above() {
        assert_eq!(diverging(0.0, 1.0), "#f7f7f7");
        assert_eq!(diverging(-1.0, 1.0), "#2166ac");
        assert_eq!(diverging(5.0, 1.0), "#b2182b");
        assert_eq!(diverging(f64::NAN, 1.0), "#f7f7f7");
        assert_eq!(diverging(0.3, 0.0), "#f7f7f7");
    }

    #[test]
    fn escape_and_numbers() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(-1.25), "\u{2212}1.25");
        assert_eq!(short_number(12.0), "12");
    }
}
