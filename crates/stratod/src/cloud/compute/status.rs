//! Status checks from the domain's side: what the prober checks (each running instance's
//! monitor, taps, volume files and primary address) and the board its results go to, which
//! DescribeInstanceStatus reads.

use std::collections::{HashMap, HashSet};

use crate::cloud::network::plumbing::gateway;
use crate::cloud::Cloud;
use crate::db::instances::Instance;
use crate::db::now_s;
use crate::lifecycle::State;
use crate::prober::{Lookup, ProbeTargets, Reach, Record, StatusBoard, Target};

impl Cloud {
    /// The latest status of an instance (`initializing` before the first round).
    pub fn status_of(&self, id: &str) -> Record {
        let map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).copied().unwrap_or(Record {
            since: now_s(),
            ..Default::default()
        })
    }

    /// Drops an instance's checks (it stopped, or its VM is replaced).
    pub fn status_forget(&self, id: &str) {
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// An instance as the checks see it; parts its records do not give are left out (no
    /// tap to check, no reachability facts).
    fn probe_target(&self, inst: &Instance) -> Target {
        let enis = self.db.instance_enis(&inst.id).unwrap_or_default();
        let reach = enis.first().and_then(|eni| {
            let subnet = self.db.subnet(&eni.subnet_id).ok()??;
            let (gateway, _) = gateway(&subnet)?;
            Some(Reach {
                tap: eni.tap.clone(),
                bridge: subnet.bridge,
                gateway,
                ip: eni.private_ip.parse().ok()?,
                ipv6: self
                    .db
                    .eni_ipv6(&eni.id)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
            })
        });
        Target {
            id: inst.id.clone(),
            vcpus: inst.vcpus as usize,
            process: self.vm(&inst.id).map(|v| v.process),
            dir: self.instance_dir(&inst.id),
            taps: enis.into_iter().map(|e| e.tap).collect(),
            volumes: self
                .db
                .instance_volumes(&inst.id)
                .unwrap_or_default()
                .iter()
                .map(|v| self.volume_path(&v.id))
                .collect(),
            reach,
        }
    }
}

impl ProbeTargets for Cloud {
    fn target(&self, id: &str) -> Lookup {
        match self.db.instance(id) {
            Ok(Some(i)) if i.state == State::Running => {
                Lookup::Running(Box::new(self.probe_target(&i)))
            }
            Ok(Some(i)) if i.state == State::Pending => Lookup::Pending,
            _ => Lookup::Gone,
        }
    }

    fn running(&self) -> Vec<Target> {
        match self.db.instances(None) {
            Ok(all) => all
                .iter()
                .filter(|i| i.state == State::Running)
                .map(|i| self.probe_target(i))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "status checks: cannot list instances");
                Vec::new()
            }
        }
    }
}

impl StatusBoard for Cloud {
    fn record(&self, id: &str) -> Record {
        self.status_of(id)
    }

    fn publish(&self, round: HashMap<String, Record>) {
        // A VM that came up during the round (its first checks run on their own) keeps its
        // record; every other record not in the round goes.
        let live: HashSet<String> = self.vms_map().keys().cloned().collect();
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| live.contains(id) && !round.contains_key(id));
        for (id, r) in &round {
            if r.system.status == crate::prober::Status::Ok
                && r.instance.status == crate::prober::Status::Ok
            {
                self.timelines.mark(id, "status_ok");
            }
        }
        map.extend(round);
    }

    fn put(&self, id: &str, record: Record) {
        if record.system.status == crate::prober::Status::Ok
            && record.instance.status == crate::prober::Status::Ok
        {
            self.timelines.mark(id, "status_ok");
        }
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.to_string(), record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::instances::tests::sample;
    use crate::db::network::{Eni, Subnet};
    use crate::prober::{Check, Status};

    #[test]
    fn targets_are_the_running_instances_with_their_taps_and_primary_address() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        cloud
            .db
            .insert_subnet(&Subnet {
                id: "subnet-0000000000000000a".into(),
                vpc_id: "vpc-0000000000000000a".into(),
                az: "home-1a".into(),
                cidr: "10.0.2.0/24".into(),
                bridge: "br0".into(),
                is_default: false,
            })
            .unwrap();
        let mut running = sample("i-0000000000000000a", "111111111111");
        running.state = State::Running;
        running.vcpus = 2;
        cloud.db.insert_instance(&running).unwrap();
        let stopped = sample("i-0000000000000000b", "111111111111");
        cloud.db.insert_instance(&stopped).unwrap();
        cloud
            .db
            .insert_eni(&Eni {
                subnet_id: "subnet-0000000000000000a".into(),
                instance_id: Some(running.id.clone()),
                tap: "tap7".into(),
                attachment_id: Some("eni-attach-0000000000000000a".into()),
                ..Eni::sample("eni-0000000000000000a", "10.0.2.9")
            })
            .unwrap();
        // Its IPv6 addresses, in assignment order, for the neighbour probe.
        cloud
            .db
            .add_eni_ipv6(
                "eni-0000000000000000a",
                &["2001:db8::20".into(), "2001:db8::10".into()],
                10,
            )
            .unwrap();
        let t = cloud.running();
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(
            t[0],
            Target {
                id: running.id.clone(),
                vcpus: 2,
                process: None,
                dir: cloud.instance_dir(&running.id),
                taps: vec!["tap7".into()],
                volumes: vec![],
                reach: Some(Reach {
                    tap: "tap7".into(),
                    bridge: "br0".into(),
                    gateway: "10.0.2.1".parse().unwrap(),
                    ip: "10.0.2.9".parse().unwrap(),
                    ipv6: vec![
                        "2001:db8::20".parse().unwrap(),
                        "2001:db8::10".parse().unwrap()
                    ],
                }),
            }
        );
    }

    #[test]
    fn the_board_holds_the_last_round_until_an_instance_is_forgotten() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let ok = Check {
            status: Status::Ok,
            impaired_since: None,
            passed_once: true,
            reason: None,
        };
        let rec = Record {
            system: ok,
            instance: ok,
            since: 5,
        };
        cloud.publish(HashMap::from([("i-0000000000000000a".to_string(), rec)]));
        assert_eq!(cloud.status_of("i-0000000000000000a"), rec);
        cloud.publish(HashMap::from([("i-0000000000000000b".to_string(), rec)]));
        assert_eq!(
            cloud.status_of("i-0000000000000000a").system.status,
            Status::Initializing,
            "a round replaces the board"
        );
        cloud.status_forget("i-0000000000000000b");
        assert_eq!(
            cloud.record("i-0000000000000000b").system.status,
            Status::Initializing
        );
    }
}
