//! Units read as `tc` reads them, for `nslab shape`, `nslab perf` and the
//! file's expectations: rates in bits per second (`bit`, `kbit`, `mbit`,
//! `gbit`, `tbit`; IEC `kibit` to `tibit`), times
//! (`s`, `ms`, `us`), loss as a percentage and a queue limit in packets. `tc`
//! reads `*bps` as *bytes* per second, which people often take for bits: those
//! suffixes are refused as ambiguous rather than guessed. Pure, no syscalls.

/// The largest rate accepted: 100 Gbit/s (tbf carries rates as u64 bytes/s, but
/// nothing nslab shapes goes faster).
pub const MAX_RATE: u64 = 100_000_000_000;
/// The longest delay or jitter accepted: 60 s.
pub const MAX_TIME_US: u64 = 60_000_000;

/// Split "10.5mbit" into ("10.5", "mbit").
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// A decimal number of at most 6 fractional digits, as millionths.
fn millionths(num: &str, what: &str, input: &str) -> Result<u128, String> {
    let bad = || format!("{what} {input:?}: {num:?} is not a number");
    if num.is_empty() {
        return Err(format!("{what} {input:?}: not a number"));
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if frac.len() > 6 || frac.contains('.') {
        return Err(format!(
            "{what} {input:?}: at most 6 digits after the point"
        ));
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut f: u128 = 0;
    for (i, c) in frac.chars().enumerate() {
        f += u128::from(c.to_digit(10).ok_or_else(bad)?) * 10u128.pow(5 - i as u32);
    }
    int.checked_mul(1_000_000)
        .and_then(|v| v.checked_add(f))
        .ok_or_else(|| format!("{what} {input:?}: too large"))
}

/// A rate like tc's: `10mbit`, `1.5gbit`, `800kbit`, `64000bit`; bits per second.
pub fn parse_rate(input: &str) -> Result<u64, String> {
    let s = input.trim().to_ascii_lowercase();
    let (num, unit) = split_number(&s);
    if num.is_empty() {
        return Err(format!(
            "rate {input:?}: not a number with a unit (e.g. 10mbit)"
        ));
    }
    let mult: u128 = match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "tbit" => 1_000_000_000_000,
        "kibit" => 1 << 10,
        "mibit" => 1 << 20,
        "gibit" => 1 << 30,
        "tibit" => 1 << 40,
        "bps" | "kbps" | "mbps" | "gbps" | "tbps" => {
            return Err(format!(
                "rate {input:?}: `{unit}` is ambiguous (tc reads it as bytes per second, \
                 many read it as bits); write bits, e.g. `{num}{}`",
                unit.replace("bps", "bit")
            ));
        }
        "" => {
            return Err(format!(
                "rate {input:?}: give a unit: bit, kbit, mbit or gbit (e.g. 10mbit)"
            ));
        }
        u => {
            return Err(format!(
                "rate {input:?}: unknown unit {u:?} (use bit, kbit, mbit or gbit)"
            ));
        }
    };
    let v = millionths(num, "rate", input)? * mult / 1_000_000;
    if v < 8 {
        return Err(format!("rate {input:?}: must be at least 8bit"));
    }
    if v > u128::from(MAX_RATE) {
        return Err(format!("rate {input:?}: must be at most 100gbit"));
    }
    Ok(v as u64)
}

/// A time like tc's: `50ms`, `1.5s`, `200us` (`usec`, `msec`, `sec` too);
/// microseconds. Zero is allowed (no delay).
pub fn parse_time(what: &str, input: &str) -> Result<u64, String> {
    let s = input.trim().to_ascii_lowercase();
    let (num, unit) = split_number(&s);
    let mult: u128 = match unit {
        "us" | "usec" | "usecs" => 1,
        "ms" | "msec" | "msecs" => 1_000,
        "s" | "sec" | "secs" => 1_000_000,
        "" => {
            return Err(format!(
                "{what} {input:?}: give a unit: s, ms or us (e.g. 20ms)"
            ));
        }
        u => {
            return Err(format!(
                "{what} {input:?}: unknown unit {u:?} (use s, ms or us)"
            ));
        }
    };
    let v = millionths(num, what, input)? * mult / 1_000_000;
    if v > u128::from(MAX_TIME_US) {
        return Err(format!("{what} {input:?}: must be at most 60s"));
    }
    Ok(v as u64)
}

/// A loss like `20%` or `0.5%`: hundredths of a percent (0 to 10000). The `%`
/// is required, so `0.2` is not mistaken for 20% or 0.2%.
pub fn parse_loss(input: &str) -> Result<u32, String> {
    let s = input.trim();
    let Some(num) = s.strip_suffix('%') else {
        return Err(format!(
            "loss {input:?}: write a percentage with %, e.g. 20%"
        ));
    };
    let m = millionths(num.trim(), "loss", input)?;
    if m > 100_000_000 {
        return Err(format!("loss {input:?}: must be between 0% and 100%"));
    }
    if m % 10_000 != 0 {
        return Err(format!(
            "loss {input:?}: at most 2 digits after the point (0.01% steps)"
        ));
    }
    Ok((m / 10_000) as u32)
}

/// A queue limit in packets: 1 to 1,000,000.
pub fn parse_limit(input: &str) -> Result<u32, String> {
    let s = input.trim();
    let n: u32 = s
        .strip_suffix("packets")
        .or_else(|| s.strip_suffix('p'))
        .unwrap_or(s)
        .trim()
        .parse()
        .map_err(|_| format!("limit {input:?}: a number of packets, e.g. 100"))?;
    if !(1..=1_000_000).contains(&n) {
        return Err(format!("limit {input:?}: must be 1 to 1000000 packets"));
    }
    Ok(n)
}

/// A rate as tc prints it: `10Mbit`, `1.5Gbit`, `800Kbit`, `64bit`.
pub fn rate_text(bits: u64) -> String {
    for (m, u) in [
        (1_000_000_000_000u64, "Tbit"),
        (1_000_000_000, "Gbit"),
        (1_000_000, "Mbit"),
        (1_000, "Kbit"),
    ] {
        if bits >= m {
            return format!("{}{u}", trim(bits as f64 / m as f64));
        }
    }
    format!("{bits}bit")
}

/// A time in microseconds as tc prints it: `50ms`, `1.5s`, `200us`.
pub fn time_text(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{}s", trim(us as f64 / 1e6))
    } else if us >= 1_000 {
        format!("{}ms", trim(us as f64 / 1e3))
    } else {
        format!("{us}us")
    }
}

/// Hundredths of a percent as `20%`, `0.5%`.
pub fn loss_text(bp: u32) -> String {
    format!("{}%", trim(f64::from(bp) / 100.0))
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A percentage as written in a file, `5%` or `0.5%`, from 0 to 100.
pub fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let Some(num) = t.strip_suffix('%') else {
        return Err(format!(
            "{s:?} is not a percentage: write it with `%`, e.g. 5%"
        ));
    };
    match num.trim().parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        Ok(_) => Err(format!("{s:?} is out of range: give 0% to 100%")),
        Err(_) => Err(format!(
            "{s:?} is not a percentage: write a number and `%`, e.g. 5%"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_tc_reads_them() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("10Mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("800kbit"), Ok(800_000));
        assert_eq!(parse_rate("64000bit"), Ok(64_000));
        assert_eq!(parse_rate(".5mbit"), Ok(500_000));
        assert_eq!(parse_rate("100gbit"), Ok(MAX_RATE));
        assert_eq!(parse_rate("1kibit"), Ok(1024));
        assert_eq!(parse_rate("2mibit"), Ok(2 * 1_048_576));
        assert_eq!(parse_rate(" 12mbit "), Ok(12_000_000));
    }

    #[test]
    fn bad_rates_say_why() {
        let e = parse_rate("10mbps").unwrap_err();
        assert!(e.contains("ambiguous") && e.contains("10mbit"), "{e}");
        assert!(parse_rate("10kbps").unwrap_err().contains("ambiguous"));
        assert!(parse_rate("10bps").unwrap_err().contains("ambiguous"));
        assert!(parse_rate("10").unwrap_err().contains("give a unit"));
        assert!(parse_rate("10mb").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("mbit").unwrap_err().contains("not a number"));
        assert!(parse_rate("fast").unwrap_err().contains("not a number"));
        assert!(parse_rate("1.2.3mbit").is_err());
        assert!(parse_rate("-1mbit").is_err());
        assert!(parse_rate("0mbit").unwrap_err().contains("at least"));
        assert!(parse_rate("101gbit").unwrap_err().contains("at most"));
        assert!(parse_rate("99999999999999999999999999999999999999999gbit").is_err());
    }

    #[test]
    fn times_read_as_tc_reads_them() {
        assert_eq!(parse_time("delay", "50ms"), Ok(50_000));
        assert_eq!(parse_time("delay", "1.5s"), Ok(1_500_000));
        assert_eq!(parse_time("delay", "200us"), Ok(200));
        assert_eq!(parse_time("delay", "2msec"), Ok(2_000));
        assert_eq!(parse_time("jitter", "0ms"), Ok(0));
        let e = parse_time("delay", "50").unwrap_err();
        assert!(e.starts_with("delay \"50\"") && e.contains("unit"), "{e}");
        assert!(
            parse_time("jitter", "5m")
                .unwrap_err()
                .starts_with("jitter")
        );
        assert!(parse_time("delay", "61s").unwrap_err().contains("at most"));
        assert!(parse_time("delay", "ms").is_err());
    }

    #[test]
    fn loss_needs_a_percent_sign_and_a_range() {
        assert_eq!(parse_loss("20%"), Ok(2000));
        assert_eq!(parse_loss("0.5%"), Ok(50));
        assert_eq!(parse_loss("100%"), Ok(10000));
        assert_eq!(parse_loss("0%"), Ok(0));
        assert!(parse_loss("20").unwrap_err().contains('%'));
        assert!(parse_loss("101%").unwrap_err().contains("between"));
        assert!(parse_loss("0.001%").unwrap_err().contains("2 digits"));
        assert!(parse_loss("x%").is_err());
    }

    #[test]
    fn limits_are_packets() {
        assert_eq!(parse_limit("100"), Ok(100));
        assert_eq!(parse_limit("100packets"), Ok(100));
        assert!(parse_limit("0").is_err());
        assert!(parse_limit("10kb").is_err());
        assert!(parse_limit("2000000").is_err());
    }

    #[test]
    fn texts_round_trip() {
        for r in ["10mbit", "1.5gbit", "800kbit", "64bit"] {
            let v = parse_rate(r).unwrap();
            assert_eq!(parse_rate(&rate_text(v)), Ok(v), "{r}");
        }
        assert_eq!(rate_text(10_000_000), "10Mbit");
        assert_eq!(time_text(50_000), "50ms");
        assert_eq!(time_text(1_500_000), "1.5s");
        assert_eq!(loss_text(2000), "20%");
        assert_eq!(loss_text(5), "0.05%");
    }

    #[test]
    fn percentages_need_their_sign_and_range() {
        assert_eq!(parse_percent("5%"), Ok(5.0));
        assert_eq!(parse_percent("0.5 %"), Ok(0.5));
        assert_eq!(parse_percent("100%"), Ok(100.0));
        assert!(parse_percent("5").unwrap_err().contains("with `%`"));
        assert!(parse_percent("101%").unwrap_err().contains("out of range"));
        assert!(parse_percent("-1%").unwrap_err().contains("out of range"));
        assert!(
            parse_percent("x%")
                .unwrap_err()
                .contains("not a percentage")
        );
    }
}
