//! "Did you mean": the known name nearest to a typo, by edit distance.

/// The candidate nearest to `s`, if near enough to be a typo of it (and not `s` itself).
pub fn closest<'a>(s: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(s, c), c))
        .filter(|&(d, c)| d > 0 && d <= 2.max(c.chars().count() / 3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let names = ["after_media_added", "on_import_failed", "ntfy"];
        assert_eq!(
            closest("after_media_aded", names),
            Some("after_media_added")
        );
        assert_eq!(closest("ntfyy", names), Some("ntfy"));
        assert_eq!(closest("ntfy", names), None, "an exact name is no typo");
        assert_eq!(closest("completely_different", names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
