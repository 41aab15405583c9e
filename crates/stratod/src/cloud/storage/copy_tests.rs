//! Unit tests of CopyImage's pieces: chunk streaming, hashing, request checks.

use super::*;

#[test]
fn send_file_marks_zero_runs_and_resumes_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    let mut data = vec![0u8; 3 * CHUNK + 10];
    data[CHUNK + 5] = 9;
    data[3 * CHUNK + 9] = 1;
    std::fs::write(&p, &data).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    send_file(&p, 0, &tx);
    drop(tx);
    let mut chunks = Vec::new();
    while let Ok(Ok(c)) = rx.try_recv() {
        chunks.push(c);
    }
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[0].zero_length, CHUNK as u64);
    assert!(chunks[0].data.is_empty());
    assert_eq!(chunks[1].data[5], 9);
    assert_eq!(chunks[3].offset, 3 * CHUNK as u64);
    assert_eq!(chunks[3].data.len(), 10);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    send_file(&p, 3 * CHUNK as u64, &tx);
    drop(tx);
    let c = rx.try_recv().unwrap().unwrap();
    assert_eq!((c.offset, c.data.len()), (3 * CHUNK as u64, 10));
    assert!(rx.try_recv().is_err());
}

#[test]
fn sha256_is_hex_of_the_contents() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, b"abc").unwrap();
    assert_eq!(
        sha256_file(&p).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn copy_image_checks_its_request() {
    let (_d, cloud) = crate::cloud::test_cloud();
    let a = "100000000001";
    let err = cloud
        .copy_image(a, None, "nowhere-1", "ami-12345678", "copy", "")
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidRegion");
    let err = cloud
        .copy_image(a, None, "", "ami-12345678", "copy", "")
        .await
        .unwrap_err();
    assert_eq!(err.code, "MissingParameter");
    let err = cloud
        .copy_image(a, None, "home-1", "nope", "copy", "")
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidAMIID.Malformed");
    let err = cloud
        .copy_image(a, None, "home-1", "ami-12345678", "x", "")
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue");
}

#[test]
fn api_errors_keep_the_source_code() {
    let e = CopyError::Refused {
        code: "InvalidAMIID.NotFound".into(),
        message: "gone".into(),
    };
    assert_eq!(e.api().code, "InvalidAMIID.NotFound");
    assert_eq!(CopyError::Unreachable("x".into()).api().code, "Unavailable");
}

#[test]
fn jobs_keep_a_digest_of_the_token_never_the_token() {
    let job = Job {
        source_region: "home-1".into(),
        source_image_id: "ami-12345678".into(),
        token: Some("s3cret-token".into()),
        token_sha256: Some(token_digest("s3cret-token")),
        files: Vec::new(),
    };
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains("s3cret-token"), "{text}");
    let back: Job = serde_json::from_str(&text).unwrap();
    assert_eq!(back.token, None);
    let tokens: std::collections::BTreeMap<String, String> = [
        ("other".to_string(), "111111111111".to_string()),
        ("s3cret-token".to_string(), "222222222222".to_string()),
    ]
    .into();
    let digest = back.token_sha256.unwrap();
    assert_eq!(token_by_digest(&tokens, &digest), Some("s3cret-token"));
    assert_eq!(token_by_digest(&tokens, &token_digest("gone")), None);
    // A job of an older version, token in clear, still reads.
    let legacy: Job = serde_json::from_str(
        r#"{"source_region":"home-1","source_image_id":"ami-1","token":"t","files":[]}"#,
    )
    .unwrap();
    assert_eq!(legacy.token.as_deref(), Some("t"));
}
