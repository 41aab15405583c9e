//! Instance metadata options (RunInstances' MetadataOptions and
//! ModifyInstanceMetadataOptions): parsed from EC2's words, applied over an instance's
//! current settings. The service itself is `crate::imds`.

use crate::cloud::Cloud;
use crate::db::instances::{HttpTokens, MetadataOptions, Toggle};
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::State;

/// The settings a request changes; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataChange {
    /// `optional` or `required`.
    pub http_tokens: Option<HttpTokens>,
    /// 1 to 64.
    pub hop_limit: Option<u8>,
    /// `enabled` or `disabled`.
    pub http_endpoint: Option<Toggle>,
    /// `enabled` or `disabled`.
    pub instance_metadata_tags: Option<Toggle>,
    /// `enabled` or `disabled`.
    pub http_protocol_ipv6: Option<Toggle>,
}

fn toggle(name: &str, v: &str) -> ApiResult<Option<Toggle>> {
    match v {
        "" => Ok(None),
        "enabled" => Ok(Some(Toggle::Enabled)),
        "disabled" => Ok(Some(Toggle::Disabled)),
        _ => Err(ApiError::invalid(format!(
            "{name} must be enabled or disabled, not '{}'.",
            v.chars().take(32).collect::<String>()
        ))),
    }
}

impl MetadataChange {
    /// Parses EC2's words; empty strings and a 0 hop limit mean "unchanged".
    pub fn parse(http_tokens: &str, hop_limit: i32, endpoint: &str, tags: &str) -> ApiResult<Self> {
        let http_tokens = match http_tokens {
            "" => None,
            "optional" => Some(HttpTokens::Optional),
            "required" => Some(HttpTokens::Required),
            other => {
                return Err(ApiError::invalid(format!(
                    "HttpTokens must be optional or required, not '{}'.",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        let hop_limit = match hop_limit {
            0 => None,
            1..=64 => Some(hop_limit as u8),
            _ => {
                return Err(ApiError::invalid(
                    "HttpPutResponseHopLimit must be from 1 to 64.",
                ))
            }
        };
        Ok(MetadataChange {
            http_tokens,
            hop_limit,
            http_endpoint: toggle("HttpEndpoint", endpoint)?,
            instance_metadata_tags: toggle("InstanceMetadataTags", tags)?,
            http_protocol_ipv6: None,
        })
    }

    /// This change with EC2's HttpProtocolIpv6 word (empty: unchanged).
    pub fn with_protocol_ipv6(self, v: &str) -> ApiResult<Self> {
        Ok(MetadataChange {
            http_protocol_ipv6: toggle("HttpProtocolIpv6", v)?,
            ..self
        })
    }

    /// `base` with this change made.
    pub fn apply(self, base: MetadataOptions) -> MetadataOptions {
        MetadataOptions {
            http_tokens: self.http_tokens.unwrap_or(base.http_tokens),
            http_put_response_hop_limit: self.hop_limit.unwrap_or(base.http_put_response_hop_limit),
            http_endpoint: self.http_endpoint.unwrap_or(base.http_endpoint),
            instance_metadata_tags: self
                .instance_metadata_tags
                .unwrap_or(base.instance_metadata_tags),
            http_protocol_ipv6: self.http_protocol_ipv6.unwrap_or(base.http_protocol_ipv6),
        }
    }
}

impl Cloud {
    /// ModifyInstanceMetadataOptions: the new settings, effective for the next request.
    pub fn modify_metadata_options(
        &self,
        account: &str,
        id: &str,
        change: MetadataChange,
    ) -> ApiResult<MetadataOptions> {
        let inst = self.owned_instance(account, id)?;
        if matches!(inst.state, State::Terminated | State::ShuttingDown) {
            return Err(ApiError::incorrect_state(id, inst.state.name(), "modified"));
        }
        let opts = change.apply(inst.metadata_options);
        self.db.set_metadata_options(id, &opts)?;
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_applies_over_the_current_settings() {
        let c = MetadataChange::parse("required", 2, "", "enabled").unwrap();
        let o = c.apply(MetadataOptions::default());
        assert_eq!(o.http_tokens, HttpTokens::Required);
        assert_eq!(o.http_put_response_hop_limit, 2);
        assert_eq!(o.http_endpoint, Toggle::Enabled);
        assert_eq!(o.instance_metadata_tags, Toggle::Enabled);
        let back = MetadataChange::parse("optional", 0, "disabled", "")
            .unwrap()
            .apply(o);
        assert_eq!(back.http_tokens, HttpTokens::Optional);
        assert_eq!(back.http_put_response_hop_limit, 2, "0 leaves it");
        assert_eq!(back.http_endpoint, Toggle::Disabled);
        assert_eq!(
            MetadataChange::parse("", 0, "", "").unwrap(),
            MetadataChange::default()
        );
    }

    #[test]
    fn the_ipv6_endpoint_is_off_until_enabled() {
        assert_eq!(
            MetadataOptions::default().http_protocol_ipv6,
            Toggle::Disabled
        );
        let on = MetadataChange::default()
            .with_protocol_ipv6("enabled")
            .unwrap()
            .apply(MetadataOptions::default());
        assert_eq!(on.http_protocol_ipv6, Toggle::Enabled);
        let kept = MetadataChange::default()
            .with_protocol_ipv6("")
            .unwrap()
            .apply(on);
        assert_eq!(kept.http_protocol_ipv6, Toggle::Enabled);
        assert!(MetadataChange::default().with_protocol_ipv6("on").is_err());
        // Rows written before the option existed read as off.
        let old: MetadataOptions = serde_json::from_str(r#"{"http_tokens":"required"}"#).unwrap();
        assert_eq!(old.http_protocol_ipv6, Toggle::Disabled);
    }

    #[test]
    fn refuses_what_ec2_refuses() {
        for (t, h, e, g) in [
            ("v2", 0, "", ""),
            ("", 65, "", ""),
            ("", -1, "", ""),
            ("", 0, "on", ""),
            ("", 0, "", "yes"),
        ] {
            let err = MetadataChange::parse(t, h, e, g).unwrap_err();
            assert_eq!(err.code, "InvalidParameterValue", "{t} {h} {e} {g}");
        }
    }
}
