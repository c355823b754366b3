//! `ils-edge generate-directory`: writes a directory file of `user00000@DOMAIN` ... for load
//! runs, in the CSV form the `[[directory_file]]` key reads.

use std::io::{self, Write};

/// Writes `count` rows `userNNNNN@domain,partition,DN,advertise` to `out`, with directory
/// numbers counting up from `first_dn`.
pub fn write_directory(
    out: &mut impl Write,
    count: u64,
    domain: &str,
    partition: &str,
    first_dn: u64,
    advertise: bool,
) -> io::Result<()> {
    let width = count.saturating_sub(1).max(1).to_string().len().max(5);
    writeln!(out, "uri,partition,directory number,advertise")?;
    for i in 0..count {
        writeln!(
            out,
            "user{i:0width$}@{domain},{partition},{},{advertise}",
            first_dn + i
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_numbered() {
        let mut out = Vec::new();
        write_directory(&mut out, 3, "hq.example.com", "Directory URI", 100000, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "uri,partition,directory number,advertise\n\
             user00000@hq.example.com,Directory URI,100000,true\n\
             user00001@hq.example.com,Directory URI,100001,true\n\
             user00002@hq.example.com,Directory URI,100002,true\n"
        );
    }
}
