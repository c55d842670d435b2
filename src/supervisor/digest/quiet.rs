//! Quiet hours as times: whether an instant is inside the daily window (local time in the
//! configured zone, possibly across midnight), and when that window ends.

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Timelike, Utc};

use crate::config::digest::QuietHours;

/// When the quiet window holding `now_ms` ends (ms since the epoch); `None` when `now_ms`
/// is outside it. The window is read on the local clock, so a daylight-saving change
/// makes that night an hour shorter or longer, as a person expects.
pub fn window_end(q: &QuietHours, now_ms: i64) -> Option<i64> {
    let now = DateTime::<Utc>::from_timestamp_millis(now_ms)?.with_timezone(&q.timezone);
    let minute = now.hour() * 60 + now.minute();
    let inside = if q.from < q.to {
        q.from <= minute && minute < q.to
    } else {
        minute >= q.from || minute < q.to
    };
    if !inside {
        return None;
    }
    // The next local `to`: today when it is still ahead, else tomorrow.
    let mut day = now.date_naive();
    if minute >= q.to {
        day = day.succ_opt()?;
    }
    let to = NaiveTime::from_hms_opt(q.to / 60, q.to % 60, 0)?;
    let mut local = day.and_time(to);
    // `to` may fall into a spring-forward gap: the window ends at the first minute after it.
    for _ in 0..=180 {
        match q.timezone.from_local_datetime(&local) {
            LocalResult::Single(t) => return Some(t.timestamp_millis()),
            // Clocks go back: the first of the two is the end the person means.
            LocalResult::Ambiguous(first, _) => return Some(first.timestamp_millis()),
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    None
}

/// "quiet hours until 07:30", the reason the API shows.
pub fn reason(q: &QuietHours) -> String {
    format!("quiet hours until {:02}:{:02}", q.to / 60, q.to % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(from: &str, to: &str, tz: chrono_tz::Tz) -> QuietHours {
        let m = |s: &str| {
            let (h, mm) = s.split_once(':').unwrap();
            h.parse::<u32>().unwrap() * 60 + mm.parse::<u32>().unwrap()
        };
        QuietHours {
            from: m(from),
            to: m(to),
            timezone: tz,
            except: vec![],
            min_events: 3,
        }
    }

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn a_window_across_midnight_ends_the_next_morning() {
        let q = quiet("23:00", "07:30", chrono_tz::UTC);
        assert_eq!(window_end(&q, at("2026-06-01T22:59:59Z")), None);
        assert_eq!(
            window_end(&q, at("2026-06-01T23:00:00Z")),
            Some(at("2026-06-02T07:30:00Z"))
        );
        assert_eq!(
            window_end(&q, at("2026-06-02T03:00:00Z")),
            Some(at("2026-06-02T07:30:00Z"))
        );
        assert_eq!(window_end(&q, at("2026-06-02T07:30:00Z")), None);
        let day = quiet("09:00", "17:00", chrono_tz::UTC);
        assert_eq!(window_end(&day, at("2026-06-02T08:00:00Z")), None);
        assert_eq!(
            window_end(&day, at("2026-06-02T12:00:00Z")),
            Some(at("2026-06-02T17:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_changes_shorten_and_lengthen_the_night() {
        let q = quiet("23:00", "07:30", chrono_tz::Europe::Berlin);
        // Last Sunday of March 2027: 02:00 CET becomes 03:00 CEST; 07:30 is 05:30 UTC.
        assert_eq!(
            window_end(&q, at("2027-03-27T22:30:00Z")),
            Some(at("2027-03-28T05:30:00Z"))
        );
        // Last Sunday of October 2027: 03:00 CEST becomes 02:00 CET; 07:30 is 06:30 UTC.
        assert_eq!(
            window_end(&q, at("2027-10-30T21:30:00Z")),
            Some(at("2027-10-31T06:30:00Z"))
        );
        // 22:30 UTC is 23:30 CET in winter (inside) but 21:59 UTC is 22:59 CET (outside).
        assert_eq!(window_end(&q, at("2027-01-10T21:59:00Z")), None);
        // An end inside the spring-forward gap (02:30 does not exist) is 03:00 CEST.
        let gap = quiet("01:00", "02:30", chrono_tz::Europe::Berlin);
        assert_eq!(
            window_end(&gap, at("2027-03-28T00:30:00Z")),
            Some(at("2027-03-28T01:00:00Z"))
        );
        // An end on the repeated hour is its first occurrence.
        let twice = quiet("01:00", "02:30", chrono_tz::Europe::Berlin);
        assert_eq!(
            window_end(&twice, at("2027-10-30T23:30:00Z")),
            Some(at("2027-10-31T00:30:00Z"))
        );
    }
}
