//! Property tests of every reader: whatever the bytes and the options, a
//! reader returns units or an error naming the file, and never panics. The
//! units it returns keep the readers' promises (one label per word, no
//! empty words or labels, 1-based lines).

use std::path::Path;

use super::fuzz::{check, describe, input, Rng};
use super::source::Source;
use super::{parallel, read_units, ColumnSeparator, ConlluTag, DataError, DataFormat, Unit};

const WORD_TAG: &[&str] = &[
    "The/DT cat/NN sat/VBD ./.\n1/2/CD a\\/b/SYM\n\nNew_York/NNP is/VBZ\n",
    "\u{feff}a/X b/Y\r\n\r\nc/Z\r\n",
];

const CONLLU: &[&str] = &[
    "# sent_id = 1\n# text = Don't go.\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n\
     1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_\n2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n\
     3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n3.1\twent\t_\t_\t_\t_\t_\t_\t_\t_\n\
     4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\tSpaceAfter=No\n\n",
];

const CONLL: &[&str] = &[
    "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n",
    "word\tNN\tB-NP\nother word\tVB\tO\n\n",
];

const PARALLEL: &[&str] = &["The cat sat\n\nA dog\n", "DT NN VBD\n\nDT NN\n"];

const TSV: &[&str] = &[
    "text\tlabel\nA fine film\tpos\nDull\tneg\n",
    "sentence1\tsentence2\tlabel\nA man\tA person\t0.8\nRain\tSun\t0.1\n",
    "great movie\t1\nbad\t0\n",
];

/// Column names and indices, including ones no file has and the largest.
const COLUMNS: &[&str] = &[
    "text",
    "label",
    "sentence1",
    "sentence2",
    "0",
    "1",
    "2",
    "7",
    "",
    " ",
    "18446744073709551615",
    "-1",
];

#[test]
fn word_tag_reader_never_panics() {
    check("word_tag_reader_never_panics", |rng, described| {
        let separator = rng
            .pick(&["/", "/", "_", "", " ", "//", "é", "\t"])
            .to_string();
        fuzz_read(rng, described, DataFormat::WordTag { separator }, WORD_TAG);
    });
}

#[test]
fn conllu_reader_never_panics() {
    check("conllu_reader_never_panics", |rng, described| {
        let tag_column = *rng.pick(&[
            ConlluTag::Upos,
            ConlluTag::Xpos,
            ConlluTag::Lemma,
            ConlluTag::Feats,
            ConlluTag::Head,
            ConlluTag::Deprel,
            ConlluTag::Misc,
        ]);
        fuzz_read(rng, described, DataFormat::Conllu { tag_column }, CONLLU);
    });
}

#[test]
fn conll_reader_never_panics() {
    check("conll_reader_never_panics", |rng, described| {
        let format = DataFormat::Conll {
            word_column: column_index(rng),
            tag_column: column_index(rng),
            separator: *rng.pick(&[ColumnSeparator::Whitespace, ColumnSeparator::Tab]),
            skip_docstart: rng.chance(2),
        };
        fuzz_read(rng, described, format, CONLL);
    });
}

#[test]
fn parallel_reader_never_panics() {
    check("parallel_reader_never_panics", |rng, described| {
        let sentences = input(rng, PARALLEL);
        let labels = input(rng, PARALLEL);
        *described = format!("{} / labels {}", describe(&sentences), describe(&labels));
        let read = Source::from_bytes(Path::new("fuzz.txt"), &sentences).and_then(|source| {
            let labels = Source::from_bytes(Path::new("labels.txt"), &labels)?;
            parallel::read(&source, &labels)
        });
        check_outcome(&read, true);
    });
}

#[test]
fn tsv_reader_never_panics() {
    check("tsv_reader_never_panics", |rng, described| {
        let pair_column = rng.chance(3).then(|| rng.pick(COLUMNS).to_string());
        let format = DataFormat::Tsv {
            text_column: rng.pick(COLUMNS).to_string(),
            pair_column,
            label_column: rng.pick(COLUMNS).to_string(),
            header: rng.chance(2),
        };
        fuzz_read(rng, described, format, TSV);
    });
}

/// Small column indices mostly, sometimes the largest there is.
fn column_index(rng: &mut Rng) -> usize {
    if rng.chance(10) {
        usize::MAX - rng.below(2)
    } else {
        rng.below(6)
    }
}

/// Reads one generated input as `format` and checks the outcome.
fn fuzz_read(rng: &mut Rng, described: &mut String, format: DataFormat, seeds: &[&str]) {
    let bytes = input(rng, seeds);
    *described = format!("{format:?}: {}", describe(&bytes));
    let read = Source::from_bytes(Path::new("fuzz.txt"), &bytes)
        .and_then(|source| read_units(&format, &source));
    check_outcome(&read, format.is_word_level());
}

/// Units keep the readers' promises; an error names a file and has a fix.
fn check_outcome(read: &Result<Vec<Unit>, DataError>, word_level: bool) {
    match read {
        Ok(units) => {
            for unit in units {
                assert!(unit.line >= 1, "line {}", unit.line);
                assert!(unit.labels.iter().all(|l| !l.trim().is_empty()), "{unit:?}");
                if word_level {
                    assert_eq!(unit.words.len(), unit.labels.len(), "{unit:?}");
                    assert!(!unit.words.is_empty(), "{unit:?}");
                    assert!(unit.words.iter().all(|w| !w.is_empty()), "{unit:?}");
                } else {
                    assert_eq!(unit.labels.len(), 1, "{unit:?}");
                    assert!(!unit.text.trim().is_empty(), "{unit:?}");
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains(".txt"), "{message}");
            assert!(message.contains("; "), "no fix in {message}");
        }
    }
}
