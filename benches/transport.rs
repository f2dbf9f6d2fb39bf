//! The transfer transport alone, no disk: 64 MiB through a TLS 1.3 session (`xsr::tls`, as
//! `send --to` / `receive --listen` use it) against the same bytes through plain TCP, over
//! loopback, sender and receiver on their own threads. Certificates are made here (rcgen).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use xsr::tls::{Session, TlsFiles, TlsReader, TlsWriter, client_config, server_config};

const BYTES: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

fn certificates(dir: &Path) -> (TlsFiles, TlsFiles) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let side = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")), ca: dir.join("ca.crt") }
    };
    (side("localhost"), side("sender"))
}

/// One transfer of `BYTES`, in 4 MiB writes and reads.
fn transfer(tls: Option<(&TlsFiles, &TlsFiles)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tls.map(|(s, _)| server_config(s, &[]).unwrap());
    let receiver = std::thread::spawn(move || {
        let (sock, peer) = listener.accept().unwrap();
        let mut input: Box<dyn Read> = match server {
            Some((config, authz)) => Box::new(TlsReader::new(
                Session::accept(sock, config, authz, peer.to_string(), TIMEOUT).unwrap(),
                TIMEOUT,
            )),
            None => Box::new(sock),
        };
        let mut buf = vec![0u8; 4 << 20];
        let mut got = 0;
        loop {
            match input.read(&mut buf).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert_eq!(got, BYTES);
    });
    let sock = TcpStream::connect(addr).unwrap();
    let data = vec![0x5a_u8; 4 << 20];
    match tls {
        Some((_, client)) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let session =
                Session::connect(sock, client_config(client).unwrap(), name, addr.to_string(), TIMEOUT).unwrap();
            let mut out = TlsWriter::new(session.clone(), TIMEOUT);
            for _ in 0..BYTES / data.len() {
                out.write_all(&data).unwrap();
            }
            session.close_notify(TIMEOUT).unwrap();
        }
        None => {
            let mut out = sock;
            for _ in 0..BYTES / data.len() {
                out.write_all(&data).unwrap();
            }
            out.shutdown(Shutdown::Write).unwrap();
        }
    }
    receiver.join().unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = certificates(dir.path());
    let mut g = c.benchmark_group("transport");
    g.throughput(Throughput::Bytes(BYTES as u64)).sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("plain TCP, 64 MiB", |b| b.iter(|| transfer(None)));
    g.bench_function("TLS 1.3 (handshake included), 64 MiB", |b| b.iter(|| transfer(Some((&server, &client)))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
