//! SVG charts of benchmark records: `target/bench/NAME.svg` beside `NAME.json`, drawn from the same
//! records (no second measurement). A [`Figure`] is a title and a grid of panels; each panel is a
//! grouped bar chart ([`Bars`]: categories × series, e.g. ztplane beside its baseline per packet size)
//! or a line chart ([`Lines`]: y against a numeric x such as the peer count).
//!
//! Baseline series are grey (bars outlined, lines dashed) and named "(baseline)" in the legend; every
//! other series gets a colour. Bars carry their value (and optionally their ratio to the baseline
//! bar of the same category), points their value, so no number has to be read off an axis.
//!
//! Only the plotters SVG backend is used: text becomes SVG `<text>` elements that the viewer renders
//! with its own fonts, so nothing here needs font files or system font libraries.
use anyhow::{Context, Result, anyhow};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;
use std::ops::Range;
use std::path::Path;

/// A chart file: a title, optional notes under it, and panels laid out `columns` wide.
pub struct Figure {
    pub title: String,
    pub notes: Vec<String>,
    pub columns: usize,
    pub panels: Vec<Panel>,
}

pub enum Panel {
    Bars(Bars),
    Lines(Lines),
}

/// Grouped bars: for each category, one bar per series that has a value there.
pub struct Bars {
    pub title: String,
    pub x_label: String,
    /// What is measured, with its unit, e.g. "Gbit/s".
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    /// Logarithmic value axis (for values spanning decades); bars then start at the axis floor.
    pub log_y: bool,
    /// Fixed top of the value axis (to give several panels one scale).
    pub y_max: Option<f64>,
    /// Writes "×R" (value / the baseline bar's value in the same category) above non-baseline bars.
    pub ratio_to_baseline: bool,
}

pub struct BarSeries {
    pub name: String,
    pub baseline: bool,
    /// One per category; `None` leaves no bar (and no gap) in that category.
    pub values: Vec<Option<f64>>,
}

/// Lines over a numeric x axis.
pub struct Lines {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<LineSeries>,
    /// A dashed vertical marker at this x, labelled (e.g. the run's baseline peer count).
    pub baseline_x: Option<(f64, String)>,
    /// Labels each point after a series' first with its ratio to that first point ("×R").
    pub ratio_to_first: bool,
}

pub struct LineSeries {
    pub name: String,
    pub baseline: bool,
    pub points: Vec<(f64, f64)>,
}

const FONT: &str = "sans-serif";
/// Tableau colours for ztplane's series; baselines are grey.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const BASELINE_GREYS: [RGBColor; 2] = [RGBColor(140, 140, 140), RGBColor(190, 190, 190)];
const GRID: RGBColor = RGBColor(225, 225, 225);
const TEXT: RGBColor = RGBColor(40, 40, 40);

/// Font sizes as plotters takes them (the SVG gets size / 1.24 px).
const TITLE_SIZE: f64 = 26.0;
const PANEL_TITLE_SIZE: f64 = 19.0;
const LABEL_SIZE: f64 = 16.0;
const VALUE_SIZE: f64 = 14.0;

const PANEL_HEIGHT: u32 = 400;
const LEGEND_ROW: u32 = 20;

/// Colours of `n` series, baselines grey and the others from the palette, in order.
fn colours(baseline: impl Iterator<Item = bool>) -> Vec<RGBColor> {
    let (mut ours, mut theirs) = (0, 0);
    baseline
        .map(|b| {
            if b {
                theirs += 1;
                BASELINE_GREYS[(theirs - 1) % BASELINE_GREYS.len()]
            } else {
                ours += 1;
                PALETTE[(ours - 1) % PALETTE.len()]
            }
        })
        .collect()
}

fn legend_name(name: &str, baseline: bool) -> String {
    if baseline { format!("{name} (baseline)") } else { name.to_string() }
}

/// Three significant digits, no exponent.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        group_thousands(v.round())
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".to_string()
    } else {
        format!("{v:.3}")
    }
}

fn group_thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// Axis tick labels: integers grouped by thousands, fractions trimmed.
pub fn format_tick(v: f64) -> String {
    if v == v.round() && v.abs() >= 1.0 {
        group_thousands(v)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A value axis, linear or logarithmic, whose ticks are chosen here (plotters draws them as given).
#[derive(Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl Axis {
    /// Linear from 0 to a round number at or above `max`.
    fn linear(max: f64) -> Axis {
        let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
        let step = nice_step(max / 5.0);
        let hi = (max / step).ceil() * step;
        let ticks = (0..).map(|i| i as f64 * step).take_while(|t| *t <= hi * (1.0 + 1e-9)).collect();
        Axis { lo: 0.0, hi, log: false, ticks }
    }

    /// Logarithmic over [lo, hi] (both > 0), ticks at 1, 2, 5 × 10^k (only 10^k over many decades).
    fn logarithmic(lo: f64, hi: f64) -> Axis {
        let (lo, hi) = if lo > 0.0 && hi > lo { (lo, hi) } else { (1.0, 10.0) };
        let decades = (hi / lo).log10();
        let steps: &[f64] = if decades <= 3.5 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let mut ticks = Vec::new();
        for e in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
            for m in steps {
                let v = m * 10f64.powi(e);
                if v >= lo && v <= hi {
                    ticks.push(v);
                }
            }
        }
        Axis { lo, hi, log: true, ticks }
    }

    /// Categories 0..n: each occupies [i, i + 1), ticks (labels) at the centres.
    fn categories(n: usize) -> Axis {
        Axis { lo: 0.0, hi: n.max(1) as f64, log: false, ticks: (0..n).map(|i| i as f64 + 0.5).collect() }
    }

    /// Ticks at these values (the x values of the data, e.g. peer counts).
    fn with_ticks(mut self, ticks: Vec<f64>) -> Axis {
        self.ticks = ticks.into_iter().filter(|t| *t >= self.lo && *t <= self.hi).collect();
        self
    }

    fn position(&self, v: f64) -> f64 {
        if self.log {
            let v = v.max(self.lo * 1e-3);
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let n = raw / magnitude;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 2.5 {
        2.5
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * magnitude
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = self.position(*value);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Grid lines and labels at the chosen ticks only; no light grid in between.
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format(value: &f64) -> String {
        format_tick(*value)
    }
}

/// Renders `figure` as an SVG document.
pub fn render(figure: &Figure) -> Result<String> {
    let columns = figure.columns.max(1);
    let rows = figure.panels.len().div_ceil(columns).max(1);
    let panel_width: u32 = if columns == 1 { 1100 } else { 760 };
    let header = 50 + 22 * figure.notes.len() as u32;
    let size = (panel_width * columns as u32, header + PANEL_HEIGHT * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (head, body) = root.split_vertically(header);
        head.draw(&Text::new(
            figure.title.clone(),
            (size.0 as i32 / 2, 12),
            (FONT, TITLE_SIZE).into_font().style(FontStyle::Bold).color(&TEXT).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(draw_error)?;
        for (i, note) in figure.notes.iter().enumerate() {
            head.draw(&Text::new(
                note.clone(),
                (size.0 as i32 / 2, 44 + 22 * i as i32),
                (FONT, LABEL_SIZE).into_font().color(&TEXT).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(draw_error)?;
        }
        let areas = body.split_evenly((rows, columns));
        for (panel, area) in figure.panels.iter().zip(areas.iter()) {
            match panel {
                Panel::Bars(bars) => draw_bars(area, bars)?,
                Panel::Lines(lines) => draw_lines(area, lines)?,
            }
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// Renders `figure` into `path`.
pub fn write(figure: &Figure, path: &Path) -> Result<()> {
    let svg = render(figure)?;
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draws the panel title and a legend (wrapped into rows) at the top of `area`; returns what is left.
fn panel_header<'a>(area: &Area<'a>, title: &str, legend: &[(String, RGBColor, bool)]) -> Result<Area<'a>> {
    let area = area.margin(6, 0, 10, 10);
    let body = area
        .titled(title, (FONT, PANEL_TITLE_SIZE).into_font().style(FontStyle::Bold).color(&TEXT))
        .map_err(draw_error)?;
    let width = body.dim_in_pixel().0 as i32;
    // Lay the entries out left to right (widths estimated: SVG text is measured by the viewer).
    let mut placed = Vec::new();
    let (mut x, mut row) = (70, 0);
    for (name, colour, baseline) in legend {
        let w = 28 + (name.chars().count() as f64 * LABEL_SIZE / 1.24 * 0.55) as i32 + 18;
        if x + w > width && x > 70 {
            x = 70;
            row += 1;
        }
        placed.push((x, row, name, colour, *baseline));
        x += w;
    }
    let height = (row as u32 + 1) * LEGEND_ROW + 4;
    let (legend_area, rest) = body.split_vertically(height);
    let font = (FONT, LABEL_SIZE).into_font().color(&TEXT).pos(Pos::new(HPos::Left, VPos::Center));
    for (x, row, name, colour, baseline) in placed {
        let y = row * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        legend_area.draw(&Rectangle::new([(x, y - 6), (x + 20, y + 6)], colour.filled())).map_err(draw_error)?;
        if baseline {
            legend_area
                .draw(&Rectangle::new([(x, y - 6), (x + 20, y + 6)], TEXT.stroke_width(1)))
                .map_err(draw_error)?;
        }
        legend_area.draw(&Text::new(name.clone(), (x + 26, y), font.clone())).map_err(draw_error)?;
    }
    Ok(rest)
}

fn draw_bars(area: &Area<'_>, bars: &Bars) -> Result<()> {
    let colours = colours(bars.series.iter().map(|s| s.baseline));
    let legend: Vec<_> =
        bars.series.iter().zip(&colours).map(|(s, c)| (legend_name(&s.name, s.baseline), *c, s.baseline)).collect();
    let body = panel_header(area, &bars.title, &legend)?;
    let values = || bars.series.iter().flat_map(|s| s.values.iter().flatten().copied()).filter(|v| v.is_finite());
    let max = values().fold(0f64, f64::max);
    let y_axis = if bars.log_y {
        let min = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        let min = if min.is_finite() { min } else { 1.0 };
        // Room above the tallest bar for its value and ratio labels.
        Axis::logarithmic(10f64.powf((min / 1.5).log10().floor()), bars.y_max.unwrap_or(max * 4.0))
    } else {
        Axis::linear(bars.y_max.unwrap_or(max) * if bars.ratio_to_baseline { 1.25 } else { 1.12 })
    };
    let floor = y_axis.lo;
    let categories = bars.categories.clone();
    let mut chart = ChartBuilder::on(&body)
        .margin_right(10)
        .x_label_area_size(52)
        .y_label_area_size(70)
        .build_cartesian_2d(Axis::categories(categories.len()), y_axis)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID)
        .axis_style(TEXT)
        .x_desc(bars.x_label.as_str())
        .y_desc(bars.y_label.as_str())
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .axis_desc_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .x_label_formatter(&|v| categories.get(v.floor() as usize).cloned().unwrap_or_default())
        .y_label_formatter(&|v| format_tick(*v))
        .draw()
        .map_err(draw_error)?;

    // Bars of one category side by side, as wide as the fullest category allows, centred.
    let widest = (0..bars.categories.len())
        .map(|c| bars.series.iter().filter(|s| s.values.get(c).copied().flatten().is_some()).count())
        .max()
        .unwrap_or(1)
        .max(1);
    let bar = (0.8 / widest as f64).min(0.3);
    let value_font = (FONT, VALUE_SIZE).into_font().color(&TEXT).pos(Pos::new(HPos::Center, VPos::Bottom));
    let ratio_font = value_font.clone().color(&RGBColor(90, 90, 90));
    for c in 0..bars.categories.len() {
        let present: Vec<(usize, f64)> = bars
            .series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.values.get(c).copied().flatten().filter(|v| v.is_finite()).map(|v| (i, v)))
            .collect();
        let baseline = present.iter().find(|(i, _)| bars.series[*i].baseline).map(|(_, v)| *v);
        let start = c as f64 + 0.5 - bar * present.len() as f64 / 2.0;
        for (slot, (i, v)) in present.into_iter().enumerate() {
            let x0 = start + slot as f64 * bar;
            let x1 = x0 + bar * 0.92;
            let top = v.max(floor);
            let colour = colours[i];
            chart
                .plotting_area()
                .draw(&Rectangle::new([(x0, floor), (x1, top)], colour.filled()))
                .map_err(draw_error)?;
            if bars.series[i].baseline {
                chart
                    .plotting_area()
                    .draw(&Rectangle::new([(x0, floor), (x1, top)], TEXT.stroke_width(1)))
                    .map_err(draw_error)?;
            }
            let centre = (x0 + x1) / 2.0;
            chart
                .plotting_area()
                .draw(&(EmptyElement::at((centre, top)) + Text::new(format_value(v), (0, -3), value_font.clone())))
                .map_err(draw_error)?;
            if let Some(b) = baseline.filter(|b| bars.ratio_to_baseline && !bars.series[i].baseline && *b > 0.0) {
                chart
                    .plotting_area()
                    .draw(
                        &(EmptyElement::at((centre, top))
                            + Text::new(format!("×{:.2}", v / b), (0, -19), ratio_font.clone())),
                    )
                    .map_err(draw_error)?;
            }
        }
    }
    Ok(())
}

fn draw_lines(area: &Area<'_>, lines: &Lines) -> Result<()> {
    let colours = colours(lines.series.iter().map(|s| s.baseline));
    let legend: Vec<_> =
        lines.series.iter().zip(&colours).map(|(s, c)| (legend_name(&s.name, s.baseline), *c, s.baseline)).collect();
    let body = panel_header(area, &lines.title, &legend)?;
    let points =
        || lines.series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (x_min, x_max) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(x), b.max(x)));
    let (y_min, y_max) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| (a.min(y), b.max(y)));
    let (x_min, x_max) = if x_min.is_finite() { (x_min, x_max) } else { (1.0, 10.0) };
    let (y_min, y_max) = if y_min.is_finite() { (y_min, y_max) } else { (1.0, 10.0) };
    let mut xs: Vec<f64> = points().map(|(x, _)| x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let x_axis = if lines.log_x {
        Axis::logarithmic(x_min.max(f64::MIN_POSITIVE) / 2.0, x_max.max(x_min * 1.01) * 2.0)
    } else {
        let span = (x_max - x_min).max(1.0);
        Axis { lo: x_min - span * 0.08, hi: x_max + span * 0.08, log: false, ticks: Vec::new() }
    };
    // Label the x axis at the data's own x values when there are few (e.g. the peer counts).
    let x_axis = if xs.len() <= 12 { x_axis.with_ticks(xs) } else { x_axis };
    let y_axis = if lines.log_y {
        Axis::logarithmic(10f64.powf((y_min.max(f64::MIN_POSITIVE) / 1.5).log10().floor()), y_max * 3.0)
    } else {
        Axis::linear(y_max * 1.2)
    };
    let mut chart = ChartBuilder::on(&body)
        .margin_right(30)
        .x_label_area_size(52)
        .y_label_area_size(70)
        .build_cartesian_2d(x_axis, y_axis.clone())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .axis_style(TEXT)
        .x_desc(lines.x_label.as_str())
        .y_desc(lines.y_label.as_str())
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .axis_desc_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .draw()
        .map_err(draw_error)?;
    if let Some((x, label)) = &lines.baseline_x {
        let grey = BASELINE_GREYS[0];
        chart
            .draw_series(DashedLineSeries::new([(*x, y_axis.lo), (*x, y_axis.hi)], 6, 4, grey.stroke_width(2)))
            .map_err(draw_error)?;
        chart
            .plotting_area()
            .draw(&Text::new(
                label.clone(),
                (*x, y_axis.hi),
                (FONT, VALUE_SIZE).into_font().color(&grey).pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(draw_error)?;
    }
    // Point labels: value (and ratio), in the series' colour; labels of one x that would overlap are
    // pushed apart vertically, keeping their top-to-bottom order.
    let mut labels: Vec<(f64, f64, i32, String, RGBColor)> = Vec::new();
    for (series, colour) in lines.series.iter().zip(&colours) {
        let style = colour.stroke_width(2);
        let data: Vec<(f64, f64)> =
            series.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if series.baseline {
            chart.draw_series(DashedLineSeries::new(data.clone(), 8, 5, style)).map_err(draw_error)?;
        } else {
            chart.draw_series(plotters::series::LineSeries::new(data.clone(), style)).map_err(draw_error)?;
        }
        chart.draw_series(data.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(draw_error)?;
        let first = data.first().map(|p| p.1);
        for (i, (x, y)) in data.iter().copied().enumerate() {
            let mut label = format_value(y);
            if let Some(f) = first.filter(|f| lines.ratio_to_first && i > 0 && *f > 0.0) {
                label.push_str(&format!(" (×{:.2})", y / f));
            }
            labels.push((x, y, chart.backend_coord(&(x, y)).1, label, *colour));
        }
    }
    labels.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    let gap = (VALUE_SIZE / 1.24 * 1.2).ceil() as i32;
    let mut previous: Option<(f64, i32)> = None;
    for (x, y, pixel_y, label, colour) in labels {
        // Where the label's baseline goes: just above the point, or below the label above it.
        let mut at = pixel_y - 6;
        if let Some((px, py)) = previous.filter(|(px, _)| *px == x) {
            at = at.max(py + gap);
            previous = Some((px, at));
        } else {
            previous = Some((x, at));
        }
        let font = (FONT, VALUE_SIZE).into_font().color(&colour).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart
            .plotting_area()
            .draw(&(EmptyElement::at((x, y)) + Text::new(label, (7, at - pixel_y + 2), font)))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// A number field of a benchmark record.
pub fn number(record: &Value, key: &str) -> Result<f64> {
    record[key].as_f64().with_context(|| format!("record has no number {key:?}: {record}"))
}

/// A string field of a benchmark record.
pub fn text<'a>(record: &'a Value, key: &str) -> Result<&'a str> {
    record[key].as_str().with_context(|| format!("record has no string {key:?}: {record}"))
}

/// `items` without repeats, in first-seen order.
pub fn distinct<T: PartialEq + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> Bars {
        Bars {
            title: "Throughput per packet size".into(),
            x_label: "packet bytes".into(),
            y_label: "Gbit/s".into(),
            categories: vec!["64 B".into(), "1400 B".into()],
            series: vec![
                BarSeries { name: "ztplane".into(), baseline: false, values: vec![Some(3.4), Some(16.9)] },
                BarSeries { name: "OpenSSL".into(), baseline: true, values: vec![Some(1.0), None] },
            ],
            log_y: false,
            y_max: None,
            ratio_to_baseline: true,
        }
    }

    fn lines(log: bool) -> Lines {
        Lines {
            title: "Lookup cost per peer count".into(),
            x_label: "peers".into(),
            y_label: "ns per lookup".into(),
            log_x: log,
            log_y: log,
            series: vec![
                LineSeries {
                    name: "route_frame".into(),
                    baseline: false,
                    points: vec![(1000.0, 148.4), (10000.0, 254.3), (100000.0, 771.3)],
                },
                LineSeries { name: "peer get".into(), baseline: true, points: vec![(1000.0, 16.2), (100000.0, 31.0)] },
            ],
            baseline_x: Some((1000.0, "baseline: 1,000 peers".into())),
            ratio_to_first: true,
        }
    }

    /// Renders into a temporary file and checks the document's frame and its text.
    fn check(figure: &Figure, name: &str, expected: &[&str]) -> String {
        let path = std::env::temp_dir().join(format!("ztplane-plot-test-{}-{name}.svg", std::process::id()));
        write(figure, &path).expect("render");
        let svg = std::fs::read_to_string(&path).expect("read back");
        std::fs::remove_file(&path).ok();
        assert!(svg.trim_start().starts_with("<svg"), "not an SVG document: {}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"), "SVG not closed");
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count(), "unbalanced <text>");
        for text in expected {
            assert!(svg.contains(text), "{text:?} missing from the SVG");
        }
        svg
    }

    #[test]
    fn bar_chart_has_title_series_values_and_ratios() {
        let figure = Figure {
            title: "crypto: test figure".into(),
            notes: vec!["a note".into()],
            columns: 1,
            panels: vec![Panel::Bars(bars())],
        };
        let svg = check(
            &figure,
            "bars",
            &[
                "crypto: test figure",
                "a note",
                "Throughput per packet size",
                "ztplane",
                "OpenSSL (baseline)",
                "Gbit/s",
                "64 B",
                "1400 B",
                "3.40",
                "16.9",
                "×3.40",
            ],
        );
        // Three bars (the missing value draws none) and the baseline's outline.
        assert!(svg.matches("<rect").count() >= 4);
    }

    #[test]
    fn log_bar_chart_renders() {
        let mut b = bars();
        b.log_y = true;
        b.series[0].values = vec![Some(2.0), Some(1500.0)];
        let figure = Figure { title: "log bars".into(), notes: Vec::new(), columns: 1, panels: vec![Panel::Bars(b)] };
        check(&figure, "logbars", &["log bars", "1,500", "×2.00"]);
    }

    #[test]
    fn line_chart_has_title_series_and_points() {
        for log in [false, true] {
            let figure = Figure {
                title: "peers: test figure".into(),
                notes: Vec::new(),
                columns: 2,
                panels: vec![Panel::Lines(lines(log)), Panel::Bars(bars())],
            };
            check(
                &figure,
                &format!("lines-{log}"),
                &[
                    "peers: test figure",
                    "Lookup cost per peer count",
                    "route_frame",
                    "peer get (baseline)",
                    "ns per lookup",
                    "771 (×5.20)",
                    "100,000",
                    "baseline: 1,000 peers",
                ],
            );
        }
    }

    #[test]
    fn values_read_at_three_digits() {
        assert_eq!(format_value(0.1234), "0.123");
        assert_eq!(format_value(3.367), "3.37");
        assert_eq!(format_value(46.42), "46.4");
        assert_eq!(format_value(771.3), "771");
        assert_eq!(format_value(20392.1), "20,392");
        assert_eq!(format_tick(100000.0), "100,000");
        assert_eq!(format_tick(2.5), "2.5");
    }
}
