//! The scaling plot (PNG) drawn with plotters' bitmap backend. Text uses a TTF font shipped
//! inside a crate (`epaint_default_fonts`), so no system font or fontconfig is needed.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// One client's curve: its name and `(in flight, value)` points.
pub type Series = (String, Vec<(f64, f64)>);

/// One panel of the plot.
pub struct Panel {
    /// The title above the panel.
    pub title: String,
    /// The y axis label.
    pub y_label: String,
    /// One curve per client.
    pub series: Vec<Series>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

fn register_fonts() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font(
                "sans-serif",
                style,
                epaint_default_fonts::UBUNTU_LIGHT,
            );
        }
    });
}

/// Draws `panels` side by side, x = devices in flight (log scale), y log scale, into `path`.
///
/// # Errors
/// When drawing or encoding fails.
pub fn draw(
    path: &Path,
    caption: &str,
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    register_fonts();
    let width = 520 * u32::try_from(panels.len().max(1))?;
    let root = BitMapBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(caption, ("sans-serif", 22))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let points = panel.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x_max, mut y_min, mut y_max) = (1.0_f64, f64::MAX, 0.0_f64);
        for &(x, y) in points {
            if y > 0.0 {
                x_max = x_max.max(x);
                y_min = y_min.min(y);
                y_max = y_max.max(y);
            }
        }
        if y_max <= 0.0 {
            y_min = 0.1;
            y_max = 1.0;
        }
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0.8_f64..x_max * 1.25).log_scale(),
                (y_min / 1.6..y_max * 1.6).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("devices in flight")
            .y_desc(panel.y_label.as_str())
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            })
            .label_style(("sans-serif", 13))
            .draw()?;
        for (i, (name, points)) in panel.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1 > 0.0).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
