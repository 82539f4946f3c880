//! `cargo xtask bench crypto`: per-core throughput of ZeroTier packet armor/dearmor (suites 1 and 3) against
//! OpenSSL in the same run — ChaCha20-Poly1305 as the reference for suite 1 (Salsa20/12-Poly1305) and
//! AES-256-GCM for suite 3 (AES-GMAC-SIV). Single thread; every op works on one packet of `bytes` bytes
//! (header 27 + payload); the OpenSSL op processes the same payload plus an 11-byte AAD. Decrypt ops start
//! from a pristine copy of the sealed packet each time (both sides pay that copy).
//!
//! Suite 3 gets one set of rows per AES-GMAC-SIV implementation this CPU can run (VAES, AES-NI, portable;
//! each built explicitly, so `ZTPLANE_GMAC_SIV` does not matter here), each paired with its own OpenSSL run
//! so that every ratio comes from alternating measurements. The `variant` column names what ran; for suite 1
//! it is "auto" (Salsa20/Poly1305 choices are in the header line).
//!
//! Options: `--ms N` time per measurement (default 120), `--reps N` best-of repetitions (default 3).
use crate::plot::{BarSeries, Bars, Figure, Panel, distinct, number, text};
use anyhow::{Context, Result, bail, ensure};
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use std::hint::black_box;
use std::time::{Duration, Instant};
use ztplane_crypto::gmac_siv::Implementation;
use ztplane_crypto::{CipherSuite, PeerKey, armor, dearmor};

const SIZES: [usize; 3] = [64, 1400, 2800];
const HEADER: usize = 27;
const AAD: usize = 11;

struct Options {
    per_measurement: Duration,
    reps: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options { per_measurement: Duration::from_millis(120), reps: 3 };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = |it: &mut std::slice::Iter<String>| -> Result<u64> {
            it.next()
                .with_context(|| format!("{arg} needs a value"))?
                .parse()
                .with_context(|| format!("bad value for {arg}"))
        };
        match arg.as_str() {
            "--ms" => options.per_measurement = Duration::from_millis(value(&mut it)?),
            "--reps" => options.reps = value(&mut it)?.max(1) as usize,
            other => bail!("unknown option {other:?} (known: --ms N, --reps N)"),
        }
    }
    Ok(options)
}

/// Operations per timed batch so that clock reads are negligible (about 2 ms of work).
fn calibrate(mut op: impl FnMut() -> Result<()>) -> Result<u64> {
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            op()?;
        }
        if start.elapsed() > Duration::from_millis(2) {
            return Ok(batch);
        }
        batch *= 2;
    }
}

/// Throughput (bytes/s) of one timed run of about `per`.
fn timed(per: Duration, bytes: usize, batch: u64, op: &mut impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < per {
        for _ in 0..batch {
            op()?;
        }
        ops += batch;
    }
    Ok((ops as f64 * bytes as f64) / start.elapsed().as_secs_f64())
}

/// Best throughput of `ours` and of `theirs`, alternating their runs so that load from other processes on
/// this shared machine hits both alike.
fn measure_pair(
    options: &Options,
    bytes: usize,
    mut ours: impl FnMut() -> Result<()>,
    mut theirs: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    let (batch_ours, batch_theirs) = (calibrate(&mut ours)?, calibrate(&mut theirs)?);
    let (mut best_ours, mut best_theirs) = (0f64, 0f64);
    for _ in 0..options.reps {
        best_ours = best_ours.max(timed(options.per_measurement, bytes, batch_ours, &mut ours)?);
        best_theirs = best_theirs.max(timed(options.per_measurement, bytes, batch_theirs, &mut theirs)?);
    }
    Ok((best_ours, best_theirs))
}

fn sample_packet(bytes: usize) -> Vec<u8> {
    let mut packet: Vec<u8> = (0..bytes).map(|i| (i * 131 + 7) as u8).collect();
    packet[8..13].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55]);
    packet[13..18].copy_from_slice(&[0x66, 0x77, 0x88, 0x99, 0xaa]);
    packet[18] = 0;
    packet
}

/// OpenSSL AEAD context reused across packets (key set once, nonce per packet).
struct Reference {
    encrypt: CipherCtx,
    decrypt: CipherCtx,
}

impl Reference {
    fn new(cipher: &CipherRef, key: &[u8; 32]) -> Result<Self> {
        let mut encrypt = CipherCtx::new()?;
        encrypt.encrypt_init(Some(cipher), Some(key), None)?;
        let mut decrypt = CipherCtx::new()?;
        decrypt.decrypt_init(Some(cipher), Some(key), None)?;
        Ok(Reference { encrypt, decrypt })
    }

    fn seal(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<()> {
        self.encrypt.encrypt_init(None, None, Some(nonce))?;
        self.encrypt.cipher_update(aad, None)?;
        let n = self.encrypt.cipher_update(input, Some(output))?;
        self.encrypt.cipher_final(&mut output[n..])?;
        self.encrypt.tag(tag)?;
        Ok(())
    }

    fn open(&mut self, nonce: &[u8; 12], aad: &[u8], input: &[u8], output: &mut [u8], tag: &[u8; 16]) -> Result<()> {
        self.decrypt.decrypt_init(None, None, Some(nonce))?;
        self.decrypt.set_tag(tag)?;
        self.decrypt.cipher_update(aad, None)?;
        let n = self.decrypt.cipher_update(input, Some(output))?;
        self.decrypt.cipher_final(&mut output[n..]).context("OpenSSL tag check failed")?;
        Ok(())
    }
}

struct Row {
    suite: u8,
    variant: &'static str,
    op: &'static str,
    bytes: usize,
    gbps: f64,
    reference: &'static str,
    reference_gbps: f64,
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let key_bytes = std::array::from_fn(|i| (i * 29 + 3) as u8);
    let reference_key: [u8; 32] = std::array::from_fn(|i| (i * 17 + 1) as u8);
    let mut rows = Vec::new();
    let mut cases = vec![(
        CipherSuite::Salsa2012Poly1305,
        1u8,
        "auto",
        PeerKey::from_bytes(key_bytes),
        "openssl chacha20-poly1305",
        Cipher::chacha20_poly1305(),
    )];
    for variant in Implementation::available() {
        let key = PeerKey::from_bytes_with(key_bytes, variant).context("available variant refused")?;
        ensure!(key.gmac_siv_implementation() == variant);
        cases.push((CipherSuite::AesGmacSiv, 3u8, variant.name(), key, "openssl aes-256-gcm", Cipher::aes_256_gcm()));
    }
    for (suite, number, variant, key, reference_name, cipher) in cases {
        let mut reference = Reference::new(cipher, &reference_key)?;
        let mut open_reference = Reference::new(cipher, &reference_key)?;
        for bytes in SIZES {
            let plain = sample_packet(bytes);
            let mut sealed = plain.clone();
            armor(&key, &mut sealed, suite)?;
            let mut work = plain.clone();
            let nonce = [9u8; 12];
            let aad = plain[8..8 + AAD].to_vec();
            let payload = &plain[HEADER..];
            let mut reference_out = vec![0u8; payload.len() + 16];
            let mut seal_out = vec![0u8; payload.len() + 16];
            let mut open_work = plain.clone();
            let mut tag = [0u8; 16];
            let mut reference_sealed = vec![0u8; payload.len() + 16];
            reference.seal(&nonce, &aad, payload, &mut reference_sealed, &mut tag)?;
            let reference_tag = tag;

            let (ours_armor, theirs_seal) = measure_pair(
                &options,
                bytes,
                // Re-armoring the same buffer is the same work as armoring a fresh packet.
                || Ok(armor(&key, black_box(&mut work), suite)?),
                || reference.seal(&nonce, &aad, black_box(payload), &mut seal_out, &mut tag),
            )?;
            let (ours_dearmor, theirs_open) = measure_pair(
                &options,
                bytes,
                || {
                    open_work.copy_from_slice(&sealed);
                    let result = dearmor(&key, black_box(&mut open_work))?;
                    ensure!(result.suite == suite);
                    Ok(())
                },
                || {
                    open_reference.open(
                        &nonce,
                        &aad,
                        black_box(&reference_sealed[..payload.len()]),
                        &mut reference_out,
                        &reference_tag,
                    )
                },
            )?;
            ensure!(open_work[HEADER..] == plain[HEADER..], "dearmor did not restore the payload");
            ensure!(&reference_out[..payload.len()] == payload, "OpenSSL round trip failed");
            for (op, ours, theirs) in [("armor", ours_armor, theirs_seal), ("dearmor", ours_dearmor, theirs_open)] {
                rows.push(Row {
                    suite: number,
                    variant,
                    op,
                    bytes,
                    gbps: ours * 8.0 / 1e9,
                    reference: reference_name,
                    reference_gbps: theirs * 8.0 / 1e9,
                });
            }
        }
    }

    println!(
        "crypto: single core, best of {} x {:?}; salsa20: {}; poly1305: {}; aes-gmac-siv default: {} (runnable: {})",
        options.reps,
        options.per_measurement,
        ztplane_crypto::salsa20::implementation(),
        ztplane_crypto::poly1305::implementation(),
        ztplane_crypto::gmac_siv::AesGmacSiv::new(&[0; 32], &[0; 32]).implementation(),
        Implementation::available().iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
    );
    println!(
        "{:<6} {:<9} {:<8} {:>6} {:>10} {:<26} {:>10} {:>6}",
        "suite", "variant", "op", "bytes", "Gbit/s", "reference", "ref Gbit/s", "ratio"
    );
    let mut records = Vec::new();
    for row in &rows {
        let ratio = row.gbps / row.reference_gbps;
        println!(
            "{:<6} {:<9} {:<8} {:>6} {:>10.2} {:<26} {:>10.2} {:>6.2}",
            row.suite, row.variant, row.op, row.bytes, row.gbps, row.reference, row.reference_gbps, ratio
        );
        records.push(serde_json::json!({
            "suite": row.suite, "variant": row.variant, "op": row.op, "bytes": row.bytes, "gbps": row.gbps,
            "reference": row.reference, "reference_gbps": row.reference_gbps, "ratio": ratio,
        }));
    }
    // Identity costs (memory-hard hash, §5.1): what a HELLO from an unknown node costs the receiver.
    let start = Instant::now();
    let identity = ztplane_crypto::Identity::generate()?;
    let generate_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let validations = 10;
    for _ in 0..validations {
        ensure!(black_box(&identity).validate(), "generated identity does not validate");
    }
    let validate_ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(validations);
    println!("identity: generate {generate_ms:.1} ms (one sample), validate {validate_ms:.2} ms");
    records.push(serde_json::json!({"op": "identity_validate", "ms": validate_ms}));
    let path = crate::report::write("crypto", &records)?;
    println!("wrote {}", path.display());
    let plot = crate::report::plot("crypto", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// The chart of `bench crypto`: one panel per suite and implementation, Gbit/s of armor and dearmor per
/// packet size, ztplane beside its OpenSSL run; all panels on one scale.
pub fn figure(records: &[serde_json::Value]) -> Result<Figure> {
    let rows: Vec<&serde_json::Value> = records.iter().filter(|r| r.get("gbps").is_some()).collect();
    ensure!(!rows.is_empty(), "no throughput records");
    let mut cases = Vec::new();
    for r in &rows {
        cases.push((number(r, "suite")? as u8, text(r, "variant")?.to_string(), text(r, "reference")?.to_string()));
    }
    let cases = distinct(cases);
    let y_max =
        rows.iter().flat_map(|r| [r["gbps"].as_f64(), r["reference_gbps"].as_f64()]).flatten().fold(0f64, f64::max);
    let mut panels = Vec::new();
    for (suite, variant, reference) in cases {
        let rows: Vec<_> = rows
            .iter()
            .filter(|r| r["suite"].as_u64() == Some(u64::from(suite)) && r["variant"] == variant.as_str())
            .collect();
        let ops = distinct(rows.iter().filter_map(|r| r["op"].as_str()));
        let sizes = distinct(rows.iter().filter_map(|r| r["bytes"].as_u64()));
        let (mut categories, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for op in &ops {
            for bytes in &sizes {
                let row = rows.iter().find(|r| r["op"] == *op && r["bytes"].as_u64() == Some(*bytes));
                categories.push(format!("{op} {bytes}"));
                ours.push(row.and_then(|r| r["gbps"].as_f64()));
                theirs.push(row.and_then(|r| r["reference_gbps"].as_f64()));
            }
        }
        let cipher = if suite == 1 { "Salsa20/12-Poly1305" } else { "AES-GMAC-SIV" };
        panels.push(Panel::Bars(Bars {
            title: format!("suite {suite}, {cipher} ({variant})"),
            x_label: "operation, packet bytes".into(),
            y_label: "Gbit/s, one core".into(),
            categories,
            series: vec![
                BarSeries { name: format!("ztplane {variant}"), baseline: false, values: ours },
                BarSeries { name: reference.replace("openssl", "OpenSSL"), baseline: true, values: theirs },
            ],
            log_y: false,
            y_max: Some(y_max),
            ratio_to_baseline: true,
        }));
    }
    let mut notes = vec![
        "single core, best of the repetitions, OpenSSL measured alternately in the same run; ×N: ztplane ÷ OpenSSL (higher is better)"
            .to_string(),
    ];
    if let Some(ms) = records.iter().find(|r| r["op"] == "identity_validate").and_then(|r| r["ms"].as_f64()) {
        notes.push(format!("identity validation (a HELLO from an unknown node): {ms:.2} ms"));
    }
    Ok(Figure {
        title: "bench crypto: ZeroTier packet armor / dearmor throughput vs OpenSSL".into(),
        notes,
        columns: 2,
        panels,
    })
}
