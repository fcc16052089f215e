//! Step paths: `check` at top level, `each[3]/price` inside a loop, `a[1]/b[2]/c` when nested.

use std::cmp::Ordering;
use std::fmt;

/// One segment of a path: a step id, and for loop iterations the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    pub id: String,
    pub index: Option<u32>,
}

/// A parsed step path. Every segment but the last carries an iteration index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepPath {
    pub segments: Vec<Segment>,
}

impl StepPath {
    pub fn top(id: &str) -> Self {
        Self {
            segments: vec![Segment {
                id: id.to_string(),
                index: None,
            }],
        }
    }

    /// Parse `each[3]/price`. Returns None for anything malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let last = i == parts.len() - 1;
            let (id, index) = match part.find('[') {
                Some(open) => {
                    let close = part.strip_suffix(']')?;
                    let idx: u32 = close[open + 1..].parse().ok()?;
                    (&part[..open], Some(idx))
                }
                None => (*part, None),
            };
            if id.is_empty() || last == index.is_some() {
                return None;
            }
            segments.push(Segment {
                id: id.to_string(),
                index,
            });
        }
        if segments.is_empty() {
            return None;
        }
        Some(Self { segments })
    }

    /// The step id this path ends in.
    pub fn step_id(&self) -> &str {
        &self.segments[self.segments.len() - 1].id
    }

    /// The path of a sibling step in the same scope.
    pub fn sibling(&self, id: &str) -> Self {
        let mut p = self.clone();
        let last = p.segments.len() - 1;
        p.segments[last].id = id.to_string();
        p
    }

    /// The path of the loop step this path is inside of, with the iteration index.
    pub fn enclosing_loop(&self) -> Option<(StepPath, u32)> {
        if self.segments.len() < 2 {
            return None;
        }
        let mut segments = self.segments[..self.segments.len() - 1].to_vec();
        let last = segments.len() - 1;
        let index = segments[last].index.take()?;
        Some((StepPath { segments }, index))
    }

    /// The path of a body step of this loop step in iteration `index`.
    pub fn iteration_child(&self, index: u32, child: &str) -> Self {
        let mut segments = self.segments.clone();
        let last = segments.len() - 1;
        segments[last].index = Some(index);
        segments.push(Segment {
            id: child.to_string(),
            index: None,
        });
        Self { segments }
    }

    /// The ids from the top level down (loop ids then the step id): how to find the definition.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|s| s.id.as_str())
    }

    pub fn depth(&self) -> usize {
        self.segments.len() - 1
    }

    /// The path prefix (`each[3]/`) of the scope this step is in; empty at top level.
    pub fn scope_prefix(&self) -> String {
        let s = self.to_string();
        match s.rfind('/') {
            Some(i) => s[..=i].to_string(),
            None => String::new(),
        }
    }

    /// The prefix of scope `depth` levels down (0 = top level).
    pub fn scope_prefix_at(&self, depth: usize) -> String {
        let mut out = String::new();
        for seg in &self.segments[..depth] {
            out.push_str(&seg.id);
            if let Some(i) = seg.index {
                out.push_str(&format!("[{i}]"));
            }
            out.push('/');
        }
        out
    }
}

/// Order of two step paths: segment by segment, ids as text and loop indexes as numbers
/// (`each[2]/x` before `each[10]/x`, which text order reverses); a loop step before the steps
/// of its iterations (`each` before `each[0]/x`). A path that does not parse compares as text.
pub fn compare_paths(a: &str, b: &str) -> Ordering {
    match (StepPath::parse(a), StepPath::parse(b)) {
        (Some(pa), Some(pb)) => {
            let key = |p: &StepPath| {
                p.segments
                    .iter()
                    .map(|s| (s.id.clone(), s.index))
                    .collect::<Vec<_>>()
            };
            key(&pa).cmp(&key(&pb)).then_with(|| a.cmp(b))
        }
        _ => a.cmp(b),
    }
}

impl fmt::Display for StepPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(&seg.id)?;
            if let Some(idx) = seg.index {
                write!(f, "[{idx}]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_nested_paths() {
        for s in ["check", "each[3]/price", "a[1]/b[20]/c"] {
            assert_eq!(StepPath::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "a[1]", "a/b", "a[x]/b", "a[1/b", "/a", "a[1]/"] {
            assert!(StepPath::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn navigates_scopes() {
        let p = StepPath::parse("a[1]/b[2]/c").unwrap();
        let (lp, i) = p.enclosing_loop().unwrap();
        assert_eq!((lp.to_string().as_str(), i), ("a[1]/b", 2));
        assert_eq!(p.scope_prefix(), "a[1]/b[2]/");
        assert_eq!(p.scope_prefix_at(1), "a[1]/");
        assert_eq!(p.sibling("d").to_string(), "a[1]/b[2]/d");
        assert_eq!(lp.iteration_child(7, "x").to_string(), "a[1]/b[7]/x");
        assert!(StepPath::top("x").enclosing_loop().is_none());
    }

    #[test]
    fn paths_compare_loop_indexes_as_numbers() {
        let mut paths = vec![
            "each[10]/x",
            "each",
            "each[2]/y",
            "each[2]/x",
            "check",
            "a[1]/b[10]/c",
            "a[1]/b[9]/c",
            "each[1]/x",
        ];
        paths.sort_by(|a, b| compare_paths(a, b));
        assert_eq!(
            paths,
            [
                "a[1]/b[9]/c",
                "a[1]/b[10]/c",
                "check",
                "each",
                "each[1]/x",
                "each[2]/x",
                "each[2]/y",
                "each[10]/x",
            ]
        );
        assert_eq!(compare_paths("x", "x"), Ordering::Equal);
        // Unparsable paths fall back to text order.
        assert_eq!(compare_paths("a[x]/b", "a[1]/b"), "a[x]/b".cmp("a[1]/b"));
    }
}
