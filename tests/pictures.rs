//! `patchsweep plot` and `patchsweep report` on a real (tiny) sweep: the files a user gets,
//! and the report opened in headless Chromium through chromedriver — it renders its
//! pictures and logs no console error. Chromium is required (CI installs the Debian
//! packages `chromium` and `chromium-driver`); without it this test fails and says so.

mod results;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use results::{database, ok, scratch};
use serde_json::{json, Value};

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn plot_writes_heatmaps_scatter_and_debias_bars_as_svg_and_png() {
    let db = database();
    let out = scratch("plots");
    let printed = ok(&["plot", "--db", db, "--out", out.to_str().unwrap()]);
    let stem = "pictures-test-1";
    for name in [
        "heatmap_resid_resid_pre",
        "heatmap_resid_attn_out",
        "heatmap_resid_mlp_out",
        "heatmap_resid-attribution_resid_pre",
        "heatmap_heads_head_out_joint",
        "scatter_resid-attribution_vs_resid",
        "debias_top-heads_mean_logit_diff",
        "debias_top-heads_perplexity",
    ] {
        let svg_path = out.join(format!("{stem}_{name}.svg"));
        let svg = std::fs::read_to_string(&svg_path)
            .unwrap_or_else(|e| panic!("{}: {e}\nplot printed:\n{printed}", svg_path.display()));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        let (w, h) = png_size(&out.join(format!("{stem}_{name}.png")));
        assert!(w > 300 && h > 200, "{name}: {w}×{h}");
    }
    // Two templates of different lengths: position columns are labels, in order.
    let resid =
        std::fs::read_to_string(out.join(format!("{stem}_heatmap_resid_resid_pre.svg"))).unwrap();
    assert!(resid.contains("grouped by label"), "{resid}");
    let at = |s: &str| {
        resid
            .find(&format!(">{s}</text>"))
            .unwrap_or_else(|| panic!("tick {s}"))
    };
    assert!(at("subject") < at("verb") && at("verb") < at("end"));
    assert!(resid.contains(">layer</text>") && resid.contains(">normalized effect</text>"));
    // The scatter states its correlation.
    let scatter =
        std::fs::read_to_string(out.join(format!("{stem}_scatter_resid-attribution_vs_resid.svg")))
            .unwrap();
    assert!(scatter.contains("Pearson r = "), "{scatter}");
    // Heads: layer × head.
    let heads =
        std::fs::read_to_string(out.join(format!("{stem}_heatmap_heads_head_out_joint.svg")))
            .unwrap();
    assert!(heads.contains(">head</text>"));
}

#[test]
fn plot_refuses_an_unknown_sweep() {
    let out = results::patchsweep(&[
        "plot",
        "--db",
        database(),
        "--sweep",
        "99",
        "--out",
        "/tmp/unused",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sweep with id 99"));
}

/// The text of `<tag ...>` elements' attribute `attr` (e.g. every `href="..."`).
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let key = format!(" {attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// A heatmap's statement of its colour range (`colour scale −1.6 to +1.6: the same …`).
fn scale_note(svg: &str) -> Option<String> {
    let at = svg.find("colour scale −")?;
    let rest = &svg[at..];
    Some(rest[..rest.find('<')?].to_string())
}

/// `0.123` → 3, `-1.20e-5` → 3, `12.35` → 4 (digits after leading zeros, exponent dropped).
fn significant_digits(number: &str) -> usize {
    let mantissa = number.trim_start_matches('-').split('e').next().unwrap();
    mantissa
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|c| *c == '0')
        .count()
}

#[test]
fn heatmaps_share_one_colour_scale_and_every_title_names_model_and_metric() {
    let db = database();
    let out = scratch("plots-scale");
    ok(&["plot", "--db", db, "--out", out.to_str().unwrap()]);
    let mut scales = Vec::new();
    let mut heatmaps = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".svg") {
            continue;
        }
        let svg = std::fs::read_to_string(&path).unwrap();
        // Every picture names the model.
        assert!(svg.contains("tiny-llama2 · "), "{name}: {svg}");
        if name.contains("_heatmap_") {
            heatmaps += 1;
            assert!(
                svg.contains(" · normalized logit-difference effect</text>"),
                "{name}: {svg}"
            );
            scales.push(
                scale_note(&svg).unwrap_or_else(|| panic!("{name} states its colour range: {svg}")),
            );
        }
    }
    assert!(heatmaps >= 5, "{heatmaps} heatmaps");
    scales.dedup();
    assert_eq!(
        scales.len(),
        1,
        "one colour range for all heatmaps: {scales:?}"
    );

    let resid =
        std::fs::read_to_string(out.join("pictures-test-1_heatmap_resid_resid_pre.svg")).unwrap();
    assert!(
        resid.contains(">tiny-llama2 · resid_pre · normalized logit-difference effect</text>"),
        "{resid}"
    );
    // Several fillers at the subject: the most common token and how many others, explained.
    assert!(resid.contains(" more</text>"), "{resid}");
    assert!(resid.contains("+N more: N other tokens"), "{resid}");

    // Every pair is held out: n is the distinct clean prompts of all pairs (pairs_v, exported).
    let pairs_file = out.join("pairs.jsonl");
    ok(&[
        "export",
        "--db",
        db,
        "--view",
        "pairs_v",
        "--format",
        "jsonl",
        "--out",
        pairs_file.to_str().unwrap(),
    ]);
    let clean_prompts: std::collections::BTreeSet<String> = std::fs::read_to_string(&pairs_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["clean_prompt"].to_string())
        .collect();
    let clean_prompts = clean_prompts.len();
    assert!(clean_prompts > 1);
    let bias =
        std::fs::read_to_string(out.join("pictures-test-1_debias_top-heads_mean_logit_diff.svg"))
            .unwrap();
    assert!(
        bias.contains("mean_logit_diff (closer to 0 is better)"),
        "{bias}"
    );
    assert!(
        bias.contains(&format!(">n = {clean_prompts} clean prompts</text>")),
        "{bias}"
    );
    // The stored intervals of the mean, on its before and after bars.
    assert!(bias.contains(", 95% [1.10, 1.90]"), "{bias}");
    assert!(bias.contains(", 95% [0.100, 0.700]"), "{bias}");
    let cost = std::fs::read_to_string(out.join("pictures-test-1_debias_top-heads_perplexity.svg"))
        .unwrap();
    assert!(cost.contains("perplexity (lower is better)"), "{cost}");
    assert!(cost.contains(">neutral text</text>"), "{cost}");
}

#[test]
fn report_has_contents_linking_every_part_readable_columns_and_even_numbers() {
    let db = database();
    let dir = scratch("report-contents");
    let html_path = dir.join("report.html");
    ok(&["report", "--db", db, "--out", html_path.to_str().unwrap()]);
    let html = std::fs::read_to_string(&html_path).unwrap();

    let nav_start = html.find("<nav>").expect("a table of contents");
    let nav_end = html.find("</nav>").unwrap();
    let nav = &html[nav_start..nav_end];
    let links: Vec<String> = attribute_values(nav, "href")
        .into_iter()
        .map(|h| h.strip_prefix('#').expect("in-page link").to_string())
        .collect();
    let ids = attribute_values(&html, "id");
    for link in &links {
        assert!(ids.contains(link), "#{link} has no target");
    }
    // Every part of the sweep is listed.
    for part in [
        "sweep-1",
        "sweep-1-experiments",
        "sweep-1-pairs",
        "sweep-1-tasks",
        "sweep-1-feature-map",
        "sweep-1-top-components",
        "sweep-1-heatmaps",
        "sweep-1-scatter",
        "sweep-1-debias",
    ] {
        assert!(links.iter().any(|l| l == part), "contents lack {part}");
    }
    assert!(
        html.matches("<h3 id=\"sweep-1-").count() >= 7,
        "parts are headings with ids"
    );

    assert!(!html.contains("an_error"));
    assert!(html.contains("<th>example_error</th>"));

    // The heatmaps' shared range is stated, and is the one the pictures use.
    let note = html
        .find("One colour scale for every heatmap")
        .expect("the report says which colour range the heatmaps use");
    let range: String = html[note..].chars().take(300).collect();
    let stated = scale_note(&html).expect("the heatmaps state their range");
    let limit = &stated[stated.find(" to +").unwrap() + " to +".len()..stated.find(':').unwrap()];
    assert!(
        range.contains(&format!("+{limit} (red)")),
        "{range} vs {stated}"
    );

    // One number format: every real in a table has three significant digits.
    let mut reals = 0;
    for cell in html.split("<td class=\"num\">").skip(1) {
        let number = &cell[..cell.find('<').unwrap()];
        if number.contains('.') || number.contains('e') {
            reals += 1;
            assert_eq!(significant_digits(number), 3, "{number}");
        }
    }
    assert!(reals > 20, "{reals} reals");
    // The debias table says which way is better, n and the intervals' source.
    assert!(html.contains("<td>closer to 0 is better</td>"));
    assert!(html.contains("<td>lower is better</td>"));
    assert!(html.contains("clean prompts</td>"));
    assert!(html.contains("Student's t over the per-prompt"));
    // Every held-out mean carries its interval before and after (stored by the worker).
    let means: Vec<&str> = html
        .split("<tr>")
        .filter(|row| row.contains("<td>mean_logit_diff</td>") && row.contains("<td>heldout</td>"))
        .collect();
    assert!(!means.is_empty(), "no held-out mean_logit_diff row");
    for row in means {
        assert_eq!(row.matches("<td>[").count(), 2, "{row}");
    }
}

#[test]
fn report_renders_in_headless_chromium_without_console_errors() {
    let db = database();
    let dir = scratch("report");
    let html_path = dir.join("report.html");
    ok(&["report", "--db", db, "--out", html_path.to_str().unwrap()]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Self-contained: no script, nothing fetched (the SVG namespace is a name, not a fetch).
    assert!(!html.contains("<script"));
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    for section in [
        "Pairs and baselines",
        "Top components per experiment",
        "Tasks",
        "Debiasing",
        "Attribution vs activation",
    ] {
        assert!(html.contains(section), "section {section}");
    }
    let figures = html.matches("<figure>").count();
    assert!(figures >= 8, "{figures} figures");

    let browser = Browser::start();
    // The check can fail: a page with a console error is caught.
    let bad = dir.join("bad.html");
    std::fs::write(&bad, "<!DOCTYPE html><html><body><p>x</p><script>console.error('deliberate')</script></body></html>").unwrap();
    browser.open(&bad);
    let errors = browser.console_errors();
    assert!(
        errors.iter().any(|e| e.contains("deliberate")),
        "{errors:?}"
    );

    browser.open(&html_path);
    let state = browser.script("return document.readyState");
    assert_eq!(state, json!("complete"));
    let drawn = browser.script(
        "return Array.from(document.querySelectorAll('figure svg')).filter(s => { \
           const r = s.getBoundingClientRect(); return r.width > 100 && r.height > 100; }).length",
    );
    assert_eq!(drawn, json!(figures), "every figure is drawn with a size");
    let tables = browser.script("return document.querySelectorAll('table').length");
    assert!(tables.as_u64().unwrap() >= 5, "{tables}");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let shot = browser.screenshot();
    assert_eq!(&shot[..4], b"\x89PNG");
    std::fs::write(dir.join("report.png"), shot).unwrap();
}

/// chromedriver driving headless Chromium, spoken to over plain HTTP (W3C WebDriver).
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

impl Browser {
    fn start() -> Browser {
        let install = "install it with `apt-get install chromium chromium-driver` (Debian; CI does this in scripts/test.sh)";
        let chrome = find(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("headless Chromium is needed for this test and was not found on PATH: {install}"));
        let driver_bin = find(&["chromedriver"]).unwrap_or_else(|| {
            panic!("chromedriver is needed for this test and was not found on PATH: {install}")
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome.to_str().unwrap(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,2000"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let created = browser.call("POST", "/session", Some(&caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    fn open(&self, file: &Path) {
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            Some(&json!({ "url": url })),
        );
    }

    fn script(&self, body: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(&json!({"script": body, "args": []})),
        )
    }

    /// Console messages at level SEVERE since the last call (chromedriver's log endpoint).
    fn console_errors(&self) -> Vec<String> {
        let log = self.call(
            "POST",
            &format!("/session/{}/se/log", self.session),
            Some(&json!({"type": "browser"})),
        );
        log.as_array()
            .unwrap_or_else(|| panic!("browser log: {log}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn screenshot(&self) -> Vec<u8> {
        let b64 = self.call(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        );
        base64_decode(b64.as_str().unwrap())
    }

    /// One WebDriver command; returns its `value`, failing the test on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut text = Vec::new();
        match length {
            Some(n) => {
                text.resize(n, 0);
                reader.read_exact(&mut text).unwrap();
            }
            None => {
                reader.read_to_end(&mut text).unwrap();
            }
        }
        let reply: Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status}: {e}"));
        assert!(
            status.contains(" 200 "),
            "{method} {path}: {status} {reply}"
        );
        reply["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}
