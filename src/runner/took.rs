//! Durations in log lines as people write them: `980ms`, `1.2s`, `2m5s`,
//! not humantime's exact `980ms 916us 603ns`.

use std::time::Duration;

/// `duration` rounded to what a reader wants: tenths of a millisecond below
/// 10 ms, whole milliseconds below a second, tenths of a second below a
/// minute, then whole seconds as hours, minutes and seconds (`1h30m0s`,
/// `2m5s`), the form pulpo's config accepts.
pub(crate) fn took(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos < 10_000_000 {
        let tenths = (nanos + 50_000) / 100_000;
        return match tenths % 10 {
            0 => format!("{}ms", tenths / 10),
            t => format!("{}.{t}ms", tenths / 10),
        };
    }
    let millis = (nanos + 500_000) / 1_000_000;
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let tenths = (millis + 50) / 100;
    if tenths < 600 {
        return match tenths % 10 {
            0 => format!("{}s", tenths / 10),
            t => format!("{}.{t}s", tenths / 10),
        };
    }
    let secs = (millis + 500) / 1000;
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    match hours {
        0 => format!("{minutes}m{seconds}s"),
        h => format!("{h}h{minutes}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [
            (Duration::ZERO, "0ms"),
            (Duration::from_nanos(400_123), "0.4ms"),
            (Duration::from_micros(4_250), "4.3ms"),
            (Duration::from_micros(9_990), "10ms"),
            (Duration::from_nanos(980_916_603), "981ms"),
            (Duration::from_micros(999_600), "1s"),
            (Duration::from_millis(1_249), "1.2s"),
            (Duration::from_millis(59_960), "1m0s"),
            (Duration::from_secs(125), "2m5s"),
            (Duration::from_secs(5400), "1h30m0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(took(duration), text, "{duration:?}");
        }
    }
}
