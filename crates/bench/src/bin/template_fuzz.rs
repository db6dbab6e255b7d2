//! `template-fuzz [cases] [seed]`: generated templates and data through the template engine
//! (see `plunk_bench::template_fuzz`); prints cases, panics, outcomes and the slowest render, and
//! exits 1 on any panic.

fn main() {
    let mut args = std::env::args().skip(1);
    let cases = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seed = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0x7e3d_1a7e);
    let started = std::time::Instant::now();
    let report = plunk_bench::template_fuzz::run(seed, cases);
    println!(
        "template fuzz: seed {seed:#x}, {} cases in {:.1} s",
        report.cases,
        started.elapsed().as_secs_f64()
    );
    println!("  panics: {}", report.panics);
    for message in &report.panic_messages {
        println!("    {message}");
    }
    println!("  refused by the syntax check: {}", report.syntax_errors);
    for (kind, count) in &report.render_failures {
        println!("  renders failed ({kind}): {count}");
    }
    println!(
        "  slowest render: {:.1} ms ({})",
        report.slowest.as_secs_f64() * 1000.0,
        report.slowest_source.escape_debug()
    );
    // The text part of a hostile body: empty style elements filling the body limit.
    let styles = "<style></style>".repeat(524_288 / 15);
    let started = std::time::Instant::now();
    let text = plunk_messaging::mailer::mime::html_to_text(&styles);
    println!(
        "  html-to-text of a 512 KB body of empty <style> elements: {:.1} ms ({} characters out)",
        started.elapsed().as_secs_f64() * 1000.0,
        text.len()
    );
    if report.panics > 0 {
        std::process::exit(1);
    }
}
