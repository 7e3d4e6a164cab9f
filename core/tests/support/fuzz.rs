//! Shared by the fuzz harnesses of every crate (`core/tests/fuzz.rs`,
//! `hub/tests/fuzz.rs`, `node/tests/fuzz.rs`, included with `#[path]`):
//! how many cases to run, structure-aware mutations of valid seeds, and an
//! allocator that measures the largest allocation a case makes.
//!
//! Mutating valid inputs (a real plan file, real Automerge changes, a real
//! import file) gets the fuzzer past the first parser, where random bytes
//! alone would almost always stop.

// Each harness uses a different part of this file.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per harness: a modest default so the suite stays fast in CI;
/// `FUZZ_CASES=1000000 cargo test --release -p htx-core --test fuzz` runs
/// for hours.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        // A long run must report a failure, not shrink it for an hour.
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// The largest input any harness feeds in. Whatever a parser does with it,
/// it has no reason to allocate more than [`ALLOC_LIMIT`] at once.
pub const MAX_INPUT: usize = 64 * 1024;
/// The largest single allocation a case may make: far above what a
/// [`MAX_INPUT`]-sized input needs, far below what an unchecked length
/// prefix would ask for.
pub const ALLOC_LIMIT: usize = 32 << 20;

/// The system allocator, remembering per thread the largest single request
/// since [`Largest::reset`] (proptest runs a case on one thread).
pub struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

impl Largest {
    pub fn reset() {
        LARGEST.with(|l| l.set(0));
    }
    pub fn get() -> usize {
        LARGEST.with(|l| l.get())
    }
    fn note(size: usize) {
        // `try_with`: the thread-local may already be gone at thread exit.
        let _ = LARGEST.try_with(|l| {
            if size > l.get() {
                l.set(size)
            }
        });
    }
}

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and fails the case if it made an allocation above
/// [`ALLOC_LIMIT`] (a size taken from the input without a check).
pub fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    Largest::reset();
    let out = f();
    let largest = Largest::get();
    prop_assert!(
        largest <= ALLOC_LIMIT,
        "{what}: one allocation of {largest} bytes for an input of at most {MAX_INPUT}"
    );
    Ok(out)
}

/// One edit of a byte string. Positions are taken modulo the length, so
/// every mutation applies to every seed.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(usize, u8),
    /// Sets a byte to a value parsers treat specially.
    Interesting(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    /// Copies a slice of the input elsewhere (repeats a field, a change).
    Duplicate {
        from: usize,
        len: usize,
        to: usize,
    },
}

const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xfe, 0xff, b'"', b',', b'\n', b'[', b'{'];

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
        2 => (any::<usize>(), prop::sample::select(INTERESTING))
            .prop_map(|(a, b)| Mutation::Interesting(a, b)),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        2 => (any::<usize>(), 1usize..32).prop_map(|(a, n)| Mutation::Remove(a, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1usize..256, any::<usize>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
    ]
}

/// Up to `max` mutations.
pub fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 0..=max)
}

/// `seed` with `muts` applied, never longer than [`MAX_INPUT`].
pub fn mutate(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in muts {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % len };
        match m {
            Mutation::FlipBit(p, bit) if !v.is_empty() => {
                let i = at(*p, v.len());
                v[i] ^= 1 << bit;
            }
            Mutation::Interesting(p, b) if !v.is_empty() => {
                let i = at(*p, v.len());
                v[i] = *b;
            }
            Mutation::Insert(p, bytes) => {
                let i = at(*p, v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove(p, n) if !v.is_empty() => {
                let i = at(*p, v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Truncate(p) => v.truncate(at(*p, v.len() + 1)),
            Mutation::Duplicate { from, len, to } if !v.is_empty() => {
                let i = at(*from, v.len());
                let end = (i + len).min(v.len());
                let piece = v[i..end].to_vec();
                let j = at(*to, v.len() + 1);
                v.splice(j..j, piece);
            }
            _ => {}
        }
    }
    v.truncate(MAX_INPUT);
    v
}

/// One edit of a text, by line or token: what a person or a broken tool
/// does to a file (a line lost or repeated, a value replaced by another).
#[derive(Debug, Clone)]
pub enum LineEdit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// Replaces the `n`th token (split on spaces, `=`, `,`) of a line.
    Replace(usize, usize, String),
    Insert(usize, String),
}

/// Values that break parsers: wrong types, out of range, unbalanced.
pub const TOKENS: &[&str] = &[
    "",
    "-1",
    "0",
    "1000001",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "1e400",
    "NaN",
    "inf",
    "0.5",
    "true",
    "\"\"",
    "\"",
    "[",
    "]",
    "{",
    "}",
    "[[",
    "=",
    ",",
    ";",
    "\\",
    "\\u0000",
    "\u{0}",
    "\u{feff}",
    "2025-02-29",
    "2024-02-29",
    "2025-13-45",
    "0000-01-01",
    "9999-12-31",
    "-0001-01-01",
    "HTX",
    "female",
    "356",
    "13633",
    "u/2023/13633",
    "ref/plan",
    "đ",
    "Nguyễn Thị Đào",
];

pub fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TOKENS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

pub fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        2 => any::<usize>().prop_map(LineEdit::Delete),
        1 => any::<usize>().prop_map(LineEdit::Duplicate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        4 => (any::<usize>(), any::<usize>(), token())
            .prop_map(|(l, t, s)| LineEdit::Replace(l, t, s)),
        1 => (any::<usize>(), token()).prop_map(|(l, s)| LineEdit::Insert(l, s)),
    ]
}

/// `text` with `edits` applied, line by line.
pub fn edit_lines(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        let n = lines.len();
        if n == 0 {
            break;
        }
        match e {
            LineEdit::Delete(i) => {
                lines.remove(i % n);
            }
            LineEdit::Duplicate(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            LineEdit::Swap(a, b) => lines.swap(a % n, b % n),
            LineEdit::Replace(i, t, s) => {
                let line = &lines[i % n];
                let bounds: Vec<(usize, usize)> = token_bounds(line);
                if !bounds.is_empty() {
                    let (start, end) = bounds[t % bounds.len()];
                    let mut l = line.clone();
                    l.replace_range(start..end, s);
                    lines[i % n] = l;
                }
            }
            LineEdit::Insert(i, s) => lines.insert(i % (n + 1), s.clone()),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    if out.len() > MAX_INPUT {
        let mut cut = MAX_INPUT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Byte ranges of the tokens of a line: runs between spaces, `=`, `,`, `;`,
/// brackets and quotes.
fn token_bounds(line: &str) -> Vec<(usize, usize)> {
    let sep = |c: char| " =,;[]{}\"".contains(c);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (sep(c), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, line.len()));
    }
    out
}

/// A text mutated by lines and tokens, then (sometimes) by bytes: the bytes
/// may no longer be UTF-8, as a damaged file's are not.
pub fn text_input(seed: String) -> impl Strategy<Value = Vec<u8>> {
    // Few edits at a time: most inputs should still be almost valid, to
    // reach the checks behind the parser.
    (
        prop::collection::vec(line_edit(), 1..4),
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(mutation(), 1..3)],
    )
        .prop_map(move |(edits, muts)| mutate(edit_lines(&seed, &edits).as_bytes(), &muts))
}

/// One edit of a parsed JSON (or TOML) document: what keeps it well-formed
/// but wrong, to reach the checks behind the parser.
#[derive(Debug, Clone)]
pub enum TreeEdit {
    /// Replaces the `n`th value (in preorder).
    Replace(usize, serde_json::Value),
    /// Removes a child of the `n`th container.
    Remove(usize, usize),
    /// Adds a child (under `key` in an object) to the `n`th container.
    Add(usize, String, serde_json::Value),
    /// Replaces the `n`th value with a copy of the `m`th.
    Copy(usize, usize),
}

/// A JSON value of any type, often one that is nearly right.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        3 => token().prop_map(J::String),
        2 => prop_oneof![
            Just(-1i64), Just(0), Just(1), Just(2), Just(1_000_001), Just(i64::MAX), Just(i64::MIN),
            any::<i64>()
        ].prop_map(J::from),
        1 => prop_oneof![Just(0.5f64), Just(1e300), Just(-0.0)].prop_map(J::from),
        1 => any::<u64>().prop_map(J::from),
    ];
    let leaf = leaf.boxed();
    let small = prop_oneof![
        prop::collection::vec(leaf.clone(), 0..3).prop_map(J::Array),
        prop::collection::btree_map(token(), leaf.clone(), 0..3)
            .prop_map(|m| J::Object(m.into_iter().collect())),
    ];
    prop_oneof![6 => leaf, 1 => small]
}

pub fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    prop_oneof![
        4 => (any::<usize>(), json_value()).prop_map(|(n, v)| TreeEdit::Replace(n, v)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(n, k)| TreeEdit::Remove(n, k)),
        1 => (any::<usize>(), token(), json_value()).prop_map(|(n, k, v)| TreeEdit::Add(n, k, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(n, m)| TreeEdit::Copy(n, m)),
    ]
}

fn count(v: &serde_json::Value, containers_only: bool) -> usize {
    let me = usize::from(!containers_only || v.is_array() || v.is_object());
    me + match v {
        serde_json::Value::Array(a) => a.iter().map(|c| count(c, containers_only)).sum(),
        serde_json::Value::Object(o) => o.values().map(|c| count(c, containers_only)).sum(),
        _ => 0,
    }
}

/// The `n`th value in preorder (of containers only, if asked).
fn nth<'a>(
    v: &'a mut serde_json::Value,
    n: &mut usize,
    containers_only: bool,
) -> Option<&'a mut serde_json::Value> {
    if !containers_only || v.is_array() || v.is_object() {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
    }
    match v {
        serde_json::Value::Array(a) => a.iter_mut().find_map(|c| nth(c, n, containers_only)),
        serde_json::Value::Object(o) => o.values_mut().find_map(|c| nth(c, n, containers_only)),
        _ => None,
    }
}

/// `seed` with `edits` applied.
pub fn edit_tree(seed: &serde_json::Value, edits: &[TreeEdit]) -> serde_json::Value {
    let mut v = seed.clone();
    for e in edits {
        let (all, containers) = (count(&v, false), count(&v, true));
        match e {
            TreeEdit::Replace(n, new) => {
                *nth(&mut v, &mut (n % all), false).expect("in range") = new.clone();
            }
            TreeEdit::Copy(n, m) => {
                let copy = nth(&mut v, &mut (m % all), false)
                    .expect("in range")
                    .clone();
                *nth(&mut v, &mut (n % all), false).expect("in range") = copy;
            }
            TreeEdit::Remove(n, k) if containers > 0 => {
                match nth(&mut v, &mut (n % containers), true).expect("in range") {
                    serde_json::Value::Array(a) if !a.is_empty() => {
                        let i = k % a.len();
                        a.remove(i);
                    }
                    serde_json::Value::Object(o) if !o.is_empty() => {
                        let key = o.keys().nth(k % o.len()).expect("in range").clone();
                        o.remove(&key);
                    }
                    _ => {}
                }
            }
            TreeEdit::Add(n, key, new) if containers > 0 => {
                match nth(&mut v, &mut (n % containers), true).expect("in range") {
                    serde_json::Value::Array(a) => a.push(new.clone()),
                    serde_json::Value::Object(o) => {
                        o.insert(key.clone(), new.clone());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    v
}

/// A JSON text: `seed` edited as a tree (mostly) or as text and bytes.
pub fn json_input(seed: serde_json::Value) -> impl Strategy<Value = Vec<u8>> {
    let text = serde_json::to_string_pretty(&seed).expect("serializes");
    prop_oneof![
        3 => (prop::collection::vec(tree_edit(), 1..4), any::<bool>()).prop_map(move |(edits, pretty)| {
            let v = edit_tree(&seed, &edits);
            let s = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
            mutate(s.expect("serializes").as_bytes(), &[])
        }),
        1 => text_input(text),
    ]
}

/// A TOML text: `seed` read as a tree and edited (mostly), or edited as
/// text and bytes. A tree that TOML cannot hold (a null) is written as
/// text edits instead.
pub fn toml_input(seed: &str) -> impl Strategy<Value = Vec<u8>> {
    let tree: serde_json::Value = toml::from_str(seed).expect("the seed is TOML");
    let text = seed.to_owned();
    prop_oneof![
        3 => prop::collection::vec(tree_edit(), 1..4).prop_map(move |edits| {
            let v = edit_tree(&tree, &edits);
            let s = toml::to_string(&v).unwrap_or_else(|_| text.clone());
            mutate(s.as_bytes(), &[])
        }),
        1 => text_input(seed.to_owned()),
    ]
}
