//! Resolves the placeholders of an S3 task's key at upload time:
//! `my-key/!{timestamp:yyyy}/!{timestamp:MM}/data.txt` → `my-key/2026/03/data.txt`. The pattern
//! is a Java `DateTimeFormatter` pattern of letters and `/` (the key rule allows no other
//! character in it), rendered in UTC (the time zone Greengrass uses is not documented; UTC is
//! the stable choice). Letters supported, with Java's meaning per letter count:
//!
//! ```text
//! y u    year (yy: two digits; otherwise padded to the count)      M L  month (1-2 digits, MMM Jan, MMMM January)
//! d      day of month        D  day of year       E  day of week (E-EEE Mon, EEEE Monday)
//! H      hour 0-23           h  hour 1-12         k  hour 1-24      K  hour 0-11     a  AM/PM
//! m      minute              s  second            S  fraction of the second (S: tenths, SSS: millis)
//! ```
//! Any other letter (`Y`, the week-based year, among them) fails the task naming the letter:
//! a key must never silently differ from what the app asked for.

use crate::sinks::civil_time::{civil, Civil};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `key` with every `!{timestamp:pattern}` resolved at `now_ms`; `Err` names what cannot be.
pub fn render(key: &str, now_ms: i64) -> Result<String, String> {
    let t = civil(now_ms);
    let mut out = String::with_capacity(key.len());
    let mut rest = key;
    while let Some(start) = rest.find("!{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("key {key:?}: unclosed placeholder"))?;
        let (name, pattern) = after[..end]
            .split_once(':')
            .ok_or_else(|| format!("key {key:?}: a placeholder is !{{timestamp:pattern}}"))?;
        if name != "timestamp" {
            return Err(format!(
                "key {key:?}: unknown placeholder {name:?} (only timestamp is known)"
            ));
        }
        format_pattern(&mut out, pattern, &t)?;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn format_pattern(out: &mut String, pattern: &str, t: &Civil) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let count = chars[i..].iter().take_while(|&&x| x == c).count();
        i += count;
        if c == '/' {
            out.extend(std::iter::repeat_n('/', count));
            continue;
        }
        out.push_str(&field(c, count, t)?);
    }
    Ok(())
}

fn field(letter: char, count: usize, t: &Civil) -> Result<String, String> {
    let num = |v: i64| format!("{v:0count$}");
    Ok(match letter {
        'y' | 'u' if count == 2 => format!("{:02}", t.year.rem_euclid(100)),
        'y' | 'u' => num(t.year),
        'M' | 'L' => match count {
            1 | 2 => num(t.month.into()),
            3 => MONTHS[t.month as usize - 1][..3].to_string(),
            4 => MONTHS[t.month as usize - 1].to_string(),
            _ => MONTHS[t.month as usize - 1][..1].to_string(),
        },
        'd' => num(t.day.into()),
        'D' => num(t.day_of_year.into()),
        'E' => match count {
            1..=3 => DAYS[t.weekday as usize][..3].to_string(),
            4 => DAYS[t.weekday as usize].to_string(),
            _ => DAYS[t.weekday as usize][..1].to_string(),
        },
        'H' => num(t.hour.into()),
        'h' => num(((t.hour + 11) % 12 + 1).into()),
        'k' => num(if t.hour == 0 { 24 } else { t.hour.into() }),
        'K' => num((t.hour % 12).into()),
        'a' => if t.hour < 12 { "AM" } else { "PM" }.to_string(),
        'm' => num(t.minute.into()),
        's' => num(t.second.into()),
        'S' => {
            // The fraction's leading digits; beyond milliseconds, zeros.
            let millis = format!("{:03}", t.millis);
            let mut s: String = millis.chars().take(count).collect();
            s.extend(std::iter::repeat_n('0', count.saturating_sub(3)));
            s
        }
        other => {
            return Err(format!(
                "the timestamp pattern letter {other:?} is not supported (use y, M, d, H, m, s, …; \
                 Y is the week-based year: use y)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-02-29T13:05:09.042Z, a Thursday.
    const LEAP_DAY: i64 = 1_709_211_909_042;

    #[test]
    fn the_documented_example_resolves_in_utc() {
        assert_eq!(
            render(
                "my-key/!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/data.txt",
                LEAP_DAY
            )
            .unwrap(),
            "my-key/2024/02/29/data.txt"
        );
        assert_eq!(
            render("a/!{timestamp:yyyy/MM/dd}/b", LEAP_DAY).unwrap(),
            "a/2024/02/29/b"
        );
    }

    #[test]
    fn letter_counts_mean_what_they_mean_in_java() {
        let r = |p: &str| render(&format!("!{{timestamp:{p}}}"), LEAP_DAY).unwrap();
        assert_eq!(r("yy"), "24");
        assert_eq!(r("M"), "2");
        assert_eq!(r("MMM"), "Feb");
        assert_eq!(r("MMMM"), "February");
        assert_eq!(r("D"), "60");
        assert_eq!(r("EEE"), "Thu");
        assert_eq!(r("HHmmss"), "130509");
        assert_eq!(r("hha"), "01PM");
        assert_eq!(r("SSS"), "042");
        assert_eq!(r("kK"), "131");
    }

    #[test]
    fn unsupported_letters_and_placeholders_fail_naming_them() {
        assert!(render("!{timestamp:YYYY}", LEAP_DAY)
            .unwrap_err()
            .contains("'Y'"));
        assert!(render("!{uuid:x}", LEAP_DAY).unwrap_err().contains("uuid"));
        assert_eq!(render("plain/key", LEAP_DAY).unwrap(), "plain/key");
    }

    #[test]
    fn the_epoch_and_a_year_end_are_correct_dates() {
        assert_eq!(
            civil(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                day_of_year: 1,
                weekday: 3,
                hour: 0,
                minute: 0,
                second: 0,
                millis: 0
            }
        );
        // 2023-12-31T23:59:59Z, a Sunday, day 365.
        let t = civil(1_704_067_199_000);
        assert_eq!((t.year, t.day_of_year, t.weekday), (2023, 365, 6));
    }
}
