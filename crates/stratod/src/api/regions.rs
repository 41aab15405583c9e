//! The Regions service: DescribeRegions and DescribeAvailabilityZones.

use strato_proto::v1 as pb;
use strato_proto::v1::regions_server::Regions;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;

/// EC2's opt-in status of regions and zones that need no opt-in.
const OPT_IN: &str = "opt-in-not-required";

#[tonic::async_trait]
impl Regions for Api {
    async fn describe_regions(
        &self,
        req: Request<pb::DescribeRegionsRequest>,
    ) -> Result<Response<pb::DescribeRegionsResponse>, Status> {
        self.handle("DescribeRegions", req, |_, r| {
            self.cloud
                .describe_regions(&r.region_names, &convert::filters(&r.filters))
                .map(|list| pb::DescribeRegionsResponse {
                    regions: list
                        .into_iter()
                        .map(|r| pb::Region {
                            region_name: r.name,
                            endpoint: r.endpoint,
                            opt_in_status: OPT_IN.into(),
                        })
                        .collect(),
                })
        })
    }

    async fn describe_availability_zones(
        &self,
        req: Request<pb::DescribeAvailabilityZonesRequest>,
    ) -> Result<Response<pb::DescribeAvailabilityZonesResponse>, Status> {
        self.handle("DescribeAvailabilityZones", req, |_, r| {
            self.cloud
                .describe_availability_zones(
                    &r.zone_names,
                    &r.zone_ids,
                    &convert::filters(&r.filters),
                )
                .map(|list| pb::DescribeAvailabilityZonesResponse {
                    availability_zones: list
                        .into_iter()
                        .map(|z| pb::AvailabilityZone {
                            zone_name: z.name,
                            zone_id: z.id,
                            group_name: z.region.clone(),
                            network_border_group: z.region.clone(),
                            region_name: z.region,
                            state: "available".into(),
                            zone_type: "availability-zone".into(),
                            opt_in_status: OPT_IN.into(),
                        })
                        .collect(),
                })
        })
    }
}
