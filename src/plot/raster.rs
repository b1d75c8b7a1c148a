//! SVG to PNG with resvg, using only the embedded font (DejaVu Sans, subset; its licence is
//! `src/plot/fonts/LICENSE`): no system fonts or libraries are read at run time, so a
//! picture renders the same on every machine.

use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context, Result};
use resvg::{tiny_skia, usvg};

const FONT: &[u8] = include_bytes!("fonts/DejaVuSans-subset.ttf");

/// Pixels per SVG unit in the PNG (2: sharp on high-density screens and in print).
pub const SCALE: f32 = 2.0;

fn fonts() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

/// Renders an SVG document to PNG bytes at [`SCALE`].
pub fn png(svg: &str) -> Result<Vec<u8>> {
    pixmap(svg)?.encode_png().context("encode the PNG")
}

fn pixmap(svg: &str) -> Result<tiny_skia::Pixmap> {
    let options = usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).context("parse the SVG")?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * SCALE).ceil() as u32,
        (size.height() * SCALE).ceil() as u32,
    );
    let mut pixmap =
        tiny_skia::Pixmap::new(w, h).ok_or_else(|| anyhow!("empty picture ({w}×{h})"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(SCALE, SCALE),
        &mut pixmap.as_mut(),
    );
    Ok(pixmap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_renders_with_the_embedded_font() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20" font-family="DejaVu Sans, sans-serif"><text x="2" y="15" font-size="12">layer</text></svg>"#;
        let dark = pixmap(svg)
            .unwrap()
            .pixels()
            .iter()
            .filter(|p| p.red() < 128)
            .count();
        assert!(dark > 20, "glyphs drawn: {dark} dark pixels");
        assert_eq!(&png(svg).unwrap()[1..4], b"PNG");
    }
}
