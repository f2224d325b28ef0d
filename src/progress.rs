//! Docker's progress rendering (`pkg/jsonmessage` `JSONProgress.String`, `go-units.HumanSize`): the Engine API
//! sends the same `progress` string dockerd does, and the CLI draws the same bars.

/// `units.HumanSize`: decimal units, 4 significant digits, trailing zeros dropped (`%.4g`).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut x = n as f64;
    let mut i = 0;
    while x >= 1000.0 && i < UNITS.len() - 1 {
        x /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig4(x), UNITS[i])
}

fn sig4(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let mag = x.abs().log10().floor() as i32;
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{x:.decimals$}");
    // %.4g can round up into the next magnitude (999.95 → 1000); the decimals then shrink by one.
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    s
}

/// The bar: `[=====>      ]  1.049MB/2.097MB` (width > 110 in Docker's terms).
pub fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        return if current == 0 {
            String::new()
        } else {
            format!("{:>8}", human_size(current))
        };
    }
    let pct = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let numbers = if current > total {
        String::new()
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    format!("[{}>{}] {numbers}", "=".repeat(pct), " ".repeat(50 - pct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        let cases = [
            (0, "0B"),
            (118, "118B"),
            (999, "999B"),
            (1000, "1kB"),
            (32768, "32.77kB"),
            (36412, "36.41kB"),
            (1048576, "1.049MB"),
            (1084273, "1.084MB"),
            (2097152, "2.097MB"),
            (4261550, "4.262MB"),
            (131072000, "131.1MB"),
            (505_000_000, "505MB"),
            (999_950, "1000kB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn bars_match_captures() {
        // from reference/wire/engine/dockerd-20.10.24/03-pull-test
        assert_eq!(
            bar(36412, 1084273),
            "[=>                                                 ]  36.41kB/1.084MB"
        );
        assert_eq!(
            bar(118, 118),
            "[==================================================>]     118B/118B"
        );
        assert_eq!(bar(5, 0), "      5B");
        assert_eq!(bar(0, 0), "");
    }
}
