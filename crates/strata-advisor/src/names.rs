//! How alike two field names are: the same words with other separators or case, one an
//! abbreviation of the other (`tmp`, `temp`, `temperature`), a typo, or a unit suffix on one of
//! them (`pressure`, `pressure_kpa`). Two different unit suffixes (`temp_c`, `temp_f`) mean two
//! quantities, never one field.

/// Unit suffixes recognised after a separator (`_`, `-`, `.`, space) or a case change.
const UNIT_SUFFIXES: &[&str] = &[
    "c",
    "f",
    "k",
    "celsius",
    "fahrenheit",
    "kelvin",
    "degc",
    "degf",
    "pct",
    "percent",
    "ms",
    "s",
    "sec",
    "secs",
    "min",
    "v",
    "mv",
    "a",
    "ma",
    "w",
    "kw",
    "kwh",
    "wh",
    "hz",
    "pa",
    "kpa",
    "hpa",
    "bar",
    "psi",
    "m",
    "cm",
    "mm",
    "km",
    "kmh",
    "mph",
    "rpm",
    "lux",
    "db",
    "ppm",
    "g",
    "kg",
];

/// A name split into its comparable words and its unit suffix, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts {
    /// Lower-case words, unit suffix removed.
    pub words: Vec<String>,
    pub unit: Option<&'static str>,
}

impl NameParts {
    /// The words run together: `battery_level` and `batteryLevel` share it.
    pub fn stem(&self) -> String {
        self.words.concat()
    }
}

pub fn parts(name: &str) -> NameParts {
    let mut words = words(name);
    let is_unit = |text: &str| UNIT_SUFFIXES.iter().copied().find(|u| *u == text);
    // A case change splits `kPa` and `mV` in two; the two halves together are the unit.
    if let [.., prefix, last] = words.as_slice() {
        if words.len() > 2 && prefix.len() == 1 {
            if let Some(unit) = is_unit(&format!("{prefix}{last}")) {
                words.truncate(words.len() - 2);
                return NameParts {
                    words,
                    unit: Some(unit),
                };
            }
        }
    }
    let unit = match words.as_slice() {
        [.., last] if words.len() > 1 => is_unit(last),
        _ => None,
    };
    if unit.is_some() {
        words.pop();
    }
    NameParts { words, unit }
}

/// Lower-case words: split at separators and at a lower-to-upper case change (`tempF`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for ch in name.chars() {
        if matches!(ch, '_' | '-' | '.' | ' ') {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if ch.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = ch.is_lowercase() || ch.is_ascii_digit();
        current.extend(ch.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// A name with a word more or fewer is usually another quantity (`pressure`,
/// `pressure_max`): its spelling score is scaled by this.
const EXTRA_WORD_FACTOR: f64 = 0.8;

/// How alike two names are, 0 to 1, and why. `None` when they carry different units.
pub fn similarity(a: &str, b: &str) -> Option<(f64, &'static str)> {
    let (a, b) = (parts(a), parts(b));
    if let (Some(unit_a), Some(unit_b)) = (a.unit, b.unit) {
        if unit_a != unit_b {
            return None;
        }
    }
    let (stem_a, stem_b) = (a.stem(), b.stem());
    if stem_a.is_empty() || stem_b.is_empty() {
        return Some((0.0, "no common words"));
    }
    if stem_a == stem_b {
        let why = if a.unit != b.unit {
            "the same name with a unit suffix"
        } else {
            "the same words"
        };
        return Some((1.0, why));
    }
    if a.words.len() != b.words.len() {
        let score = strsim::jaro_winkler(&stem_a, &stem_b) * EXTRA_WORD_FACTOR;
        return Some((score, "similar spelling, a word apart"));
    }
    // Word by word: the weakest word decides.
    a.words
        .iter()
        .zip(&b.words)
        .map(|(x, y)| word_similarity(x, y))
        .min_by(|x, y| x.0.total_cmp(&y.0))
}

fn word_similarity(a: &str, b: &str) -> (f64, &'static str) {
    if a == b {
        return (1.0, "the same words");
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let spelling = (strsim::jaro_winkler(a, b), "similar spelling");
    let abbreviation = if short.len() >= 3 && long.starts_with(short) {
        (0.9, "one is an abbreviation of the other")
    } else if short.len() >= 3 && is_abbreviation(short, long) {
        (0.8, "one is an abbreviation of the other")
    } else {
        (0.0, "")
    };
    if abbreviation.0 >= spelling.0 {
        abbreviation
    } else {
        spelling
    }
}

/// `short` is `long` with letters left out, keeping its first letter (`tmp` of `temperature`,
/// `hmd` of `humidity`).
fn is_abbreviation(short: &str, long: &str) -> bool {
    let mut long_chars = long.chars();
    let mut short_chars = short.chars();
    if short_chars.next() != long_chars.next() {
        return false;
    }
    short_chars.all(|ch| long_chars.any(|other| other == ch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_at_separators_and_case_changes() {
        assert_eq!(parts("tempF").unit, Some("f"));
        assert_eq!(parts("temp_c").stem(), "temp");
        assert_eq!(parts("Pressure-kPa").stem(), "pressure");
        assert_eq!(parts("f").unit, None, "a name is never only a unit");
    }

    #[test]
    fn renamed_abbreviated_suffixed_and_misspelt_names_are_alike() {
        let score = |a, b| similarity(a, b).map(|(s, _)| s).unwrap_or(-1.0);
        assert_eq!(score("temp", "temperature"), 0.9);
        assert_eq!(score("tmp", "temperature"), 0.8);
        assert_eq!(score("pressure", "pressure_kpa"), 1.0);
        assert_eq!(score("batteryLevel", "battery_level"), 1.0);
        assert!(score("humidity", "humidty") > 0.9);
        assert!(score("temp", "humidity") < 0.6);
        assert_eq!(
            similarity("temp_c", "temp_f"),
            None,
            "two units are two quantities"
        );
        assert!(
            score("pres", "pressure_max") < 0.75,
            "a qualifier word is another quantity"
        );
        assert_eq!(score("spd", "speed"), 0.8);
    }
}
