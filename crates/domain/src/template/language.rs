//! The tags, blocks and filters of the language: Liquid's standard
//! library without `include`, `render` and `tablerow`, with `for` and `capture` replaced by the
//! bounded versions of [`super::blocks`], `cycle` escaped in HTML bodies, every filter behind the
//! guard of [`super::filters`], and the `raw` filter added.

use super::blocks::{CaptureBlock, CommentBlock, EscapedTag, ForBlock};
use super::filters::{Guarded, Raw};
use liquid_core::parser::Language;
use liquid_core::{ParseBlock, ParseFilter, ParseTag};
use std::sync::OnceLock;

/// The language, built once.
pub(super) fn language() -> &'static Language {
    static LANGUAGE: OnceLock<Language> = OnceLock::new();
    LANGUAGE.get_or_init(|| {
        use liquid_lib::stdlib;
        let mut lang = Language::empty();
        let tags: Vec<Box<dyn ParseTag>> = vec![
            Box::new(stdlib::AssignTag),
            Box::new(stdlib::BreakTag),
            Box::new(stdlib::ContinueTag),
            Box::new(EscapedTag::new(Box::new(stdlib::CycleTag))),
            Box::new(stdlib::IncrementTag),
            Box::new(stdlib::DecrementTag),
        ];
        for tag in tags {
            lang.tags.register(tag.reflection().tag().to_owned(), tag);
        }
        let blocks: Vec<Box<dyn ParseBlock>> = vec![
            Box::new(stdlib::RawBlock),
            Box::new(stdlib::IfBlock),
            Box::new(stdlib::UnlessBlock),
            Box::new(stdlib::IfChangedBlock),
            Box::new(ForBlock),
            Box::new(CommentBlock),
            Box::new(CaptureBlock),
            Box::new(stdlib::CaseBlock),
        ];
        for block in blocks {
            lang.blocks
                .register(block.reflection().start_tag().to_owned(), block);
        }
        let filters: Vec<Box<dyn ParseFilter>> = vec![
            Box::new(stdlib::Abs),
            Box::new(stdlib::Append),
            Box::new(stdlib::AtLeast),
            Box::new(stdlib::AtMost),
            Box::new(stdlib::Capitalize),
            Box::new(stdlib::Ceil),
            Box::new(stdlib::Compact),
            Box::new(stdlib::Concat),
            Box::new(stdlib::Date),
            Box::new(stdlib::Default),
            Box::new(stdlib::DividedBy),
            Box::new(stdlib::Downcase),
            Box::new(stdlib::Escape),
            Box::new(stdlib::EscapeOnce),
            Box::new(stdlib::First),
            Box::new(stdlib::Floor),
            Box::new(stdlib::Join),
            Box::new(stdlib::Last),
            Box::new(stdlib::Lstrip),
            Box::new(stdlib::Map),
            Box::new(stdlib::Minus),
            Box::new(stdlib::Modulo),
            Box::new(stdlib::NewlineToBr),
            Box::new(stdlib::Plus),
            Box::new(stdlib::Prepend),
            Box::new(stdlib::Remove),
            Box::new(stdlib::RemoveFirst),
            Box::new(stdlib::Replace),
            Box::new(stdlib::ReplaceFirst),
            Box::new(stdlib::Reverse),
            Box::new(stdlib::Round),
            Box::new(stdlib::Rstrip),
            Box::new(stdlib::Size),
            Box::new(stdlib::Slice),
            Box::new(stdlib::Sort),
            Box::new(stdlib::SortNatural),
            Box::new(stdlib::Split),
            Box::new(stdlib::Strip),
            Box::new(stdlib::StripHtml),
            Box::new(stdlib::StripNewlines),
            Box::new(stdlib::Times),
            Box::new(stdlib::Truncate),
            Box::new(stdlib::TruncateWords),
            Box::new(stdlib::Uniq),
            Box::new(stdlib::Upcase),
            Box::new(stdlib::UrlDecode),
            Box::new(stdlib::UrlEncode),
            Box::new(stdlib::Where),
        ];
        for filter in filters {
            let name = filter.reflection().name().to_owned();
            lang.filters.register(name, Box::new(Guarded::new(filter)));
        }
        lang.filters.register("raw".to_owned(), Box::new(Raw));
        lang
    })
}
