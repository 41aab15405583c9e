//! Key pairs: CreateKeyPair (an ed25519 key generated here, its private half returned once
//! in the OpenSSH format and never stored), ImportKeyPair (an OpenSSH public key, checked to
//! parse), DescribeKeyPairs and DeleteKeyPair (idempotent, as in EC2); and the key a launch
//! installs through the config drive.

use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

use crate::cloud::filters::{self, Filter};
use crate::cloud::placement::groups::check_name;
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::key_pairs::KeyPair;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// Largest public key accepted by ImportKeyPair (an RSA-16384 line is about 2.8 KiB).
pub const MAX_PUBLIC_KEY: usize = 16 * 1024;

/// Filter names of DescribeKeyPairs.
pub const FILTERS: &[&str] = &[
    "key-name",
    "key-pair-id",
    "fingerprint",
    "key-type",
    "tag-key",
];

/// A new key pair's public and private halves.
#[derive(Debug)]
pub struct Generated {
    /// The OpenSSH public key line (its comment is the key name).
    pub public_key: String,
    /// The OpenSSH private key file.
    pub private_key: String,
    /// `SHA256:…`
    pub fingerprint: String,
}

/// OpenSSH's fingerprint of a public key: `SHA256:` and the unpadded base64 digest, as
/// `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key type name of an algorithm the daemon accepts.
fn key_type(alg: &Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::Ed25519 => Some("ed25519"),
        Algorithm::Rsa { .. } => Some("rsa"),
        Algorithm::Ecdsa { .. } => Some("ecdsa"),
        _ => None,
    }
}

fn bad_format(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidKeyFormat,
        format!("Key is not in valid OpenSSH public key format: {why}"),
    )
}

/// Parses ImportKeyPair's material: one OpenSSH public key line of a supported type.
/// Returns the key (normalised to one line) and its type.
pub fn parse_public_key(material: &[u8]) -> ApiResult<(PublicKey, &'static str)> {
    if material.len() > MAX_PUBLIC_KEY {
        return Err(bad_format("longer than 16 KiB"));
    }
    let text = std::str::from_utf8(material).map_err(|_| bad_format("not UTF-8 text"))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next().ok_or_else(|| bad_format("empty"))?;
    if lines.next().is_some() {
        return Err(bad_format("more than one key"));
    }
    let key = PublicKey::from_openssh(line).map_err(|e| bad_format(&e.to_string()))?;
    let kind = key_type(&key.algorithm()).ok_or_else(|| {
        bad_format(&format!(
            "{} keys are not supported (use ed25519, rsa or ecdsa)",
            key.algorithm()
        ))
    })?;
    Ok((key, kind))
}

/// A fresh ed25519 key pair whose comment is `name`.
pub fn generate_ed25519(name: &str) -> ApiResult<Generated> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    secure_random(seed.as_mut())?;
    let pair = Ed25519Keypair::from_seed(&seed);
    let private = PrivateKey::new(KeypairData::from(pair), name)
        .map_err(|e| ApiError::internal(format!("Cannot build the key: {e}")))?;
    let private_key = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| ApiError::internal(format!("Cannot encode the private key: {e}")))?;
    generated(&private, private_key.to_string())
}

/// A generated pair: its private key as the caller gets it, its public half and
/// fingerprint as stored.
fn generated(private: &PrivateKey, private_key: String) -> ApiResult<Generated> {
    let public = private.public_key();
    let public_key = public
        .to_openssh()
        .map_err(|e| ApiError::internal(format!("Cannot encode the public key: {e}")))?;
    Ok(Generated {
        public_key,
        private_key,
        fingerprint: fingerprint(public),
    })
}

/// RSA keys made by CreateKeyPair, in bits (EC2's size).
pub const RSA_BITS: usize = 2048;

/// A fresh RSA key pair whose comment is `name`; the private key in PKCS#1 PEM
/// (`BEGIN RSA PRIVATE KEY`), the format EC2 returns for RSA keys.
pub fn generate_rsa(name: &str) -> ApiResult<Generated> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    // OsRng draws from getrandom(2) with no fallback.
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
        .map_err(|e| ApiError::internal(format!("Cannot generate an RSA key: {e}")))?;
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| ApiError::internal(format!("Cannot encode the private key: {e}")))?;
    let pair = ssh_key::private::RsaKeypair::try_from(&key)
        .map_err(|e| ApiError::internal(format!("Cannot build the key: {e}")))?;
    let private = PrivateKey::new(KeypairData::from(pair), name)
        .map_err(|e| ApiError::internal(format!("Cannot build the key: {e}")))?;
    generated(&private, pem.to_string())
}

/// Fills `buf` from getrandom(2). Unlike `ids::fill_random` there is no fallback: a key
/// must never come from a guessable source.
fn secure_random(buf: &mut [u8]) -> ApiResult<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into the valid, writable `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ApiError::internal(format!("getrandom failed: {e}")));
        }
        done += n as usize;
    }
    Ok(())
}

impl Cloud {
    /// CreateKeyPair: returns the stored pair and the private key (shown only now).
    pub fn create_key_pair(
        &self,
        account: &str,
        name: &str,
        kind: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<(KeyPair, String)> {
        check_name("KeyName", name)?;
        // EC2's default type is rsa.
        let (kind, g) = match kind {
            "" | "rsa" => ("rsa", generate_rsa(name)?),
            "ed25519" => ("ed25519", generate_ed25519(name)?),
            other => {
                return Err(ApiError::invalid(format!(
                    "Invalid KeyType '{}': use rsa or ed25519.",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        let pair = KeyPair {
            id: ids::new_id(Kind::KeyPair),
            owner: account.to_string(),
            name: name.to_string(),
            key_type: kind.into(),
            fingerprint: g.fingerprint,
            public_key: g.public_key,
            tags,
            created: crate::db::now_s(),
        };
        self.insert_pair(&pair)?;
        Ok((pair, g.private_key))
    }

    /// ImportKeyPair.
    pub fn import_key_pair(
        &self,
        account: &str,
        name: &str,
        material: &[u8],
        tags: Vec<Tag>,
    ) -> ApiResult<KeyPair> {
        check_name("KeyName", name)?;
        if material.is_empty() {
            return Err(ApiError::missing("PublicKeyMaterial"));
        }
        let (key, kind) = parse_public_key(material)?;
        let public_key = key.to_openssh().map_err(|e| bad_format(&e.to_string()))?;
        let pair = KeyPair {
            id: ids::new_id(Kind::KeyPair),
            owner: account.to_string(),
            name: name.to_string(),
            key_type: kind.to_string(),
            fingerprint: fingerprint(&key),
            public_key,
            tags,
            created: crate::db::now_s(),
        };
        self.insert_pair(&pair)?;
        Ok(pair)
    }

    fn insert_pair(&self, pair: &KeyPair) -> ApiResult<()> {
        if !self.db.insert_key_pair(pair)? {
            return Err(ApiError::new(
                ErrorCode::InvalidKeyPairDuplicate,
                format!("The keypair '{}' already exists.", pair.name),
            ));
        }
        Ok(())
    }

    /// DescribeKeyPairs: the named ones (each must exist) or all, filtered.
    pub fn describe_key_pairs(
        &self,
        account: &str,
        names: &[String],
        pair_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<KeyPair>> {
        filters::check_names(f, FILTERS)?;
        ids::check_all(Kind::KeyPair, pair_ids)?;
        let all = self.db.key_pairs(account)?;
        if let Some(n) = names.iter().find(|n| !all.iter().any(|k| &k.name == *n)) {
            return Err(not_found(n));
        }
        if let Some(id) = pair_ids.iter().find(|id| !all.iter().any(|k| &k.id == *id)) {
            return Err(Kind::KeyPair.not_found(id));
        }
        let mut out = Vec::new();
        for k in all {
            if (!names.is_empty() || !pair_ids.is_empty())
                && !names.contains(&k.name)
                && !pair_ids.contains(&k.id)
            {
                continue;
            }
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "key-name" => one(&k.name),
                    "key-pair-id" => one(&k.id),
                    "fingerprint" => one(&k.fingerprint),
                    "key-type" => one(&k.key_type),
                    n => filters::tag_values(&k.tags, n),
                }
            })?;
            if ok {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// DeleteKeyPair by name or ID; deleting one that does not exist succeeds. Returns the
    /// deleted pair's ID. Instances launched with it keep their key.
    pub fn delete_key_pair(
        &self,
        account: &str,
        name: &str,
        id: &str,
    ) -> ApiResult<Option<String>> {
        if name.is_empty() && id.is_empty() {
            return Err(ApiError::missing("KeyName"));
        }
        if !id.is_empty() {
            ids::check(Kind::KeyPair, id)?;
        }
        Ok(self.db.delete_key_pair(account, name, id)?)
    }

    /// The ID of the account's key pair named `name` (or with ID `id`), if there is one.
    pub fn key_pair_id(&self, account: &str, name: &str, id: &str) -> ApiResult<Option<String>> {
        let k = if id.is_empty() {
            self.db.key_pair_by_name(account, name)?
        } else {
            self.db.key_pair(id)?.filter(|k| k.owner == account)
        };
        Ok(k.map(|k| k.id))
    }

    /// The public key a launch with `key_name` installs.
    pub fn launch_key(&self, account: &str, name: &str) -> ApiResult<String> {
        self.db
            .key_pair_by_name(account, name)?
            .map(|k| k.public_key)
            .ok_or_else(|| not_found(name))
    }
}

/// `InvalidKeyPair.NotFound` for a name.
pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidKeyPairNotFound,
        format!(
            "The key pair '{}' does not exist",
            name.chars().take(64).collect::<String>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_openssh() {
        let g = generate_ed25519("laptop").unwrap();
        assert!(g
            .private_key
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(
            g.public_key.starts_with("ssh-ed25519 AAAA"),
            "{}",
            g.public_key
        );
        assert!(g.public_key.ends_with(" laptop"), "{}", g.public_key);
        assert!(g.fingerprint.starts_with("SHA256:"), "{}", g.fingerprint);
        let private = PrivateKey::from_openssh(&g.private_key).unwrap();
        assert_eq!(fingerprint(private.public_key()), g.fingerprint);
        let (public, kind) = parse_public_key(g.public_key.as_bytes()).unwrap();
        assert_eq!(
            (kind, fingerprint(&public)),
            ("ed25519", g.fingerprint.clone())
        );
        assert_ne!(
            generate_ed25519("laptop").unwrap().fingerprint,
            g.fingerprint
        );
    }

    #[test]
    fn generated_rsa_keys_are_pkcs1_and_match_their_public_half() {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let g = generate_rsa("lab").unwrap();
        assert!(g
            .private_key
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(&g.private_key).unwrap();
        assert_eq!(key.size() * 8, RSA_BITS);
        assert!(g.public_key.starts_with("ssh-rsa AAAA"), "{}", g.public_key);
        let (public, kind) = parse_public_key(g.public_key.as_bytes()).unwrap();
        assert_eq!(kind, "rsa");
        assert_eq!(fingerprint(&public), g.fingerprint);
        let pair = ssh_key::private::RsaKeypair::try_from(&key).unwrap();
        let from_private = PrivateKey::new(KeypairData::from(pair), "lab").unwrap();
        assert_eq!(fingerprint(from_private.public_key()), g.fingerprint);
    }

    #[test]
    fn imports_are_checked() {
        let g = generate_ed25519("k").unwrap();
        let padded = format!("\n  {}  \n", g.public_key);
        assert!(parse_public_key(padded.as_bytes()).is_ok());
        let two = format!("{}\n{}\n", g.public_key, g.public_key);
        for bad in [
            b"".as_slice(),
            b"ssh-ed25519 not-base64 x",
            b"hello",
            b"\xff\xfe",
            two.as_bytes(),
            &[b'a'; MAX_PUBLIC_KEY + 1],
        ] {
            let e = parse_public_key(bad).unwrap_err();
            assert_eq!(e.code, "InvalidKey.Format", "{bad:?}");
        }
    }
}
