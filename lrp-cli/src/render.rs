//! Human-readable explanations: the sentence coloured by relevance in a
//! terminal (red for evidence for the explained class, blue against,
//! stronger for larger magnitude), plain text elsewhere, and a standalone
//! HTML page.

use std::fmt::Write;

/// What a human view shows of one explanation.
pub(crate) struct View<'a> {
    /// The words.
    pub tokens: &'a [String],
    /// Relevance per word.
    pub relevance: &'a [f64],
    /// Class scores.
    pub scores: &'a [f64],
    /// Predicted class.
    pub predicted: usize,
    /// Explained class.
    pub target: usize,
    /// Class names, when the model has them.
    pub labels: Option<&'a [String]>,
    /// `lrp`, `sa`, ...
    pub method: &'a str,
}

impl View<'_> {
    fn label(&self, class: usize) -> String {
        match self.labels.and_then(|l| l.get(class)) {
            Some(name) => format!("{name} ({class})"),
            None => format!("class {class}"),
        }
    }

    /// The largest |relevance|, the scale of the colours (1 if all are 0).
    fn scale(&self) -> f64 {
        let m = self.relevance.iter().fold(0.0f64, |m, r| m.max(r.abs()));
        if m > 0.0 {
            m
        } else {
            1.0
        }
    }

    /// Background colour of a relevance: white to red (positive) or blue
    /// (negative), by magnitude relative to the largest.
    fn colour(&self, r: f64) -> (u8, u8, u8) {
        let fade = (255.0 * (1.0 - (r.abs() / self.scale()).min(1.0))).round() as u8;
        if r >= 0.0 {
            (255, fade, fade)
        } else {
            (fade, fade, 255)
        }
    }

    fn header(&self) -> String {
        let scores: Vec<String> = self
            .scores
            .iter()
            .enumerate()
            .map(|(k, s)| match self.labels.and_then(|l| l.get(k)) {
                Some(name) => format!("{name} {s:.3}"),
                None => format!("{k}: {s:.3}"),
            })
            .collect();
        format!(
            "predicted: {}\nscores: {}\nrelevance for {} ({}; red: for, blue: against):\n",
            self.label(self.predicted),
            scores.join(", "),
            self.label(self.target),
            self.method
        )
    }

    /// For a terminal: each word on a background of its colour (24-bit
    /// ANSI), followed by the words with their relevance values.
    pub fn terminal(&self, colour: bool) -> String {
        let mut out = self.header();
        if colour {
            for (token, &r) in self.tokens.iter().zip(self.relevance) {
                let (red, green, blue) = self.colour(r);
                let _ = write!(out, "\x1b[38;2;0;0;0;48;2;{red};{green};{blue}m {token} \x1b[0m");
            }
            out.push('\n');
        }
        let plain: Vec<String> = self
            .tokens
            .iter()
            .zip(self.relevance)
            .map(|(t, r)| format!("{t} {r:+.3}"))
            .collect();
        out.push_str(&plain.join("  "));
        out.push('\n');
        out
    }

    /// One `<section>` of the HTML page.
    pub fn html_section(&self) -> String {
        let mut words = String::new();
        for (token, &r) in self.tokens.iter().zip(self.relevance) {
            let (red, green, blue) = self.colour(r);
            let _ = write!(
                words,
                "<span class=\"w\" style=\"background: rgb({red}, {green}, {blue})\" title=\"{r:+.4}\">{}</span> ",
                escape(token)
            );
        }
        let rows: String = self
            .scores
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let mark = if k == self.predicted {
                    " class=\"predicted\""
                } else {
                    ""
                };
                format!("<tr{mark}><td>{}</td><td>{s:.4}</td></tr>", escape(&self.label(k)))
            })
            .collect();
        format!(
            "<section>\n<p class=\"sentence\">{words}</p>\n<p>Predicted: <b>{}</b>. Relevance for <b>{}</b> ({}).</p>\n<table><tr><th>class</th><th>score</th></tr>{rows}</table>\n</section>\n",
            escape(&self.label(self.predicted)),
            escape(&self.label(self.target)),
            escape(self.method)
        )
    }
}

/// A standalone page around the sections, with a colour legend.
pub(crate) fn html_page(sections: &[String]) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lrp explanation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; color: #111; }}
.sentence {{ font-size: 1.4em; line-height: 2.2em; }}
.w {{ padding: 0.15em 0.3em; border-radius: 0.25em; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }}
tr.predicted td {{ font-weight: bold; }}
.legend {{ display: flex; align-items: center; gap: 0.6em; margin: 1em 0 2em; }}
.bar {{ width: 16em; height: 1em; background: linear-gradient(to right, rgb(0,0,255), rgb(255,255,255), rgb(255,0,0)); border: 1px solid #999; }}
</style>
</head>
<body>
<h1>Layer-wise Relevance Propagation</h1>
<div class="legend"><span>against the class</span><div class="bar"></div><span>for the class</span>
<span>(colour strength: |relevance| relative to the sentence's largest; hover a word for its value)</span></div>
{}</body>
</html>
"#,
        sections.concat()
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
