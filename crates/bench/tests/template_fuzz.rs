//! The template engine never panics: a seeded fuzz run over generated templates and data (the
//! `template-fuzz` bench binary runs the same with a larger budget).

#[test]
fn generated_templates_never_panic_the_engine() {
    let report = plunk_bench::template_fuzz::run(0x5eed_7e3d, 3_000);
    assert_eq!(
        report.cases,
        3_000 + plunk_bench::template_fuzz::HOSTILE.len() as u64
    );
    assert_eq!(report.panics, 0, "{:#?}", report.panic_messages);
    // The run reached the engine's interesting outcomes, not only syntax errors.
    assert!(report.syntax_errors > 0);
    assert!(report.render_failures.contains_key("runtime"));
    assert!(
        report.render_failures.contains_key("LoopIterations"),
        "{:?}",
        report.render_failures
    );
    assert!(
        report.render_failures.contains_key("Memory"),
        "{:?}",
        report.render_failures
    );
}
