//! Roles: the weight and quota operators set (`wasmesos role set`), stored
//! one record per role and applied at the next allocation; and the roles
//! view (`wasmesos roles`, the JSON state) with live allocations and
//! shares.
//!
//! A role needs no record: frameworks name roles freely, and a role without
//! one weighs what its frameworks were deployed with (the highest) and has
//! no quota. A record's weight wins over the frameworks'.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::oneshot;
use tonic::Status;
use wasmesos_allocator::{Quota, ResourceLimits};
use wasmesos_api::proto;
use wasmesos_api::{FrameworkId, Principal, Resources, now_ms};

use super::Core;
use crate::commit::put;
use crate::keys;

type Reply<T> = oneshot::Sender<Result<T, Status>>;

impl Core {
    pub(super) fn set_role(
        &mut self,
        principal: Principal,
        request: proto::SetRoleRequest,
        reply: Reply<proto::Role>,
    ) {
        match self.updated_role(&principal, request) {
            Ok(record) => {
                tracing::info!(role = %record.name, weight = record.weight, "role set");
                self.roles.insert(record.name.clone(), record.clone());
                self.allocation_pending = true;
                let ops = vec![put(keys::role(&record.name), &record)];
                self.write(ops, move |core| {
                    let view = core
                        .role_views()
                        .into_iter()
                        .find(|r| r.name == record.name);
                    let _ = reply.send(Ok(view.unwrap_or(record)));
                });
            }
            Err(status) => {
                let _ = reply.send(Err(status));
            }
        }
    }

    /// The role's record with the request applied, or why it is refused.
    fn updated_role(
        &self,
        principal: &Principal,
        request: proto::SetRoleRequest,
    ) -> Result<proto::Role, Status> {
        if !principal.is_operator() {
            return Err(Status::permission_denied("only operators may change roles"));
        }
        // Role names become store keys: the rules of ids.
        FrameworkId::new(request.name.clone())
            .map_err(|e| Status::invalid_argument(format!("role: {e}")))?;
        let mut record = self
            .roles
            .get(&request.name)
            .cloned()
            .unwrap_or_else(|| proto::Role {
                name: request.name.clone(),
                weight: self.framework_weight(&request.name),
                ..Default::default()
            });
        if let Some(weight) = request.weight {
            if !weight.is_finite() || weight <= 0.0 {
                return Err(Status::invalid_argument(format!(
                    "weight must be a positive number, got {weight}"
                )));
            }
            record.weight = weight;
        }
        if let Some(guarantee) = request.guarantee {
            self.check_kinds("guarantee", &Resources::from(&guarantee))?;
            record.guarantee = Some(guarantee);
        }
        if request.clear_limit {
            record.limit = None;
        } else if let Some(limit) = request.limit {
            self.check_kinds("limit", &limits_as_amounts(&limit))?;
            record.limit = Some(limit);
        }
        let quota = quota_of(&record);
        if !quota.limit.allows(&quota.guarantee) {
            return Err(Status::invalid_argument(format!(
                "the guarantee ({}) is above the limit: a role can never be guaranteed more than it may hold",
                quota.guarantee
            )));
        }
        record.updated_ms = now_ms();
        Ok(record)
    }

    /// Refuses resource kinds that no agent offers (a typo such as `cpu`
    /// would otherwise be a quota on nothing).
    fn check_kinds(&self, what: &str, amounts: &Resources) -> Result<(), Status> {
        let known = self.known_scalars();
        if let Some(unknown) = amounts
            .scalars_milli
            .keys()
            .find(|k| !known.contains(k.as_str()))
        {
            let mut kinds = vec!["cpus", "mem", "disk"];
            kinds.extend(known.iter().copied());
            return Err(Status::invalid_argument(format!(
                "unknown resource '{unknown}' in the {what}: the agents offer {}",
                kinds.join(", ")
            )));
        }
        Ok(())
    }

    /// The custom scalar kinds some known agent declares.
    fn known_scalars(&self) -> BTreeSet<&str> {
        self.agents
            .values()
            .filter_map(|a| a.record.total.as_ref())
            .flat_map(|t| t.scalars_milli.keys().map(String::as_str))
            .collect()
    }

    /// The weight of a role without a record: the highest its frameworks
    /// were deployed with, or 1.
    pub(super) fn framework_weight(&self, role: &str) -> f64 {
        self.frameworks
            .values()
            .filter(|f| f.record.role == role && f.record.weight > 0.0)
            .map(|f| f.record.weight)
            .fold(None, |best: Option<f64>, w| {
                Some(best.map_or(w, |b| b.max(w)))
            })
            .unwrap_or(1.0)
    }

    /// The weight and quota the allocator uses for `role`.
    pub(super) fn role_settings(&self, role: &str) -> (f64, Quota) {
        match self.roles.get(role) {
            Some(record) => (record.weight, quota_of(record)),
            None => (self.framework_weight(role), Quota::default()),
        }
    }

    /// Every configured role and every role a framework names, with its
    /// live allocation (its frameworks' tasks) and dominant share.
    pub(super) fn role_views(&self) -> Vec<proto::Role> {
        let total = self.cluster_total();
        let mut views: BTreeMap<String, proto::Role> = self
            .roles
            .iter()
            .map(|(name, r)| {
                let mut view = r.clone();
                view.configured = true;
                (name.clone(), view)
            })
            .collect();
        let mut allocated: BTreeMap<&str, Resources> = BTreeMap::new();
        for f in self.frameworks.values() {
            let role = f.record.role.as_str();
            *allocated.entry(role).or_default() += &f.allocated;
            let view = views
                .entry(role.to_string())
                .or_insert_with(|| proto::Role {
                    name: role.to_string(),
                    weight: self.framework_weight(role),
                    ..Default::default()
                });
            view.frameworks.push(f.record.name.clone());
        }
        for view in views.values_mut() {
            let held = allocated.remove(view.name.as_str()).unwrap_or_default();
            view.dominant_share = held.dominant_share(&total);
            view.allocated = Some((&held).into());
            view.frameworks.sort();
        }
        views.into_values().collect()
    }
}

/// A record's quota as the allocator takes it.
pub(super) fn quota_of(record: &proto::Role) -> Quota {
    Quota {
        guarantee: Resources::from(record.guarantee.as_ref()),
        limit: record.limit.as_ref().map(limits_of).unwrap_or_default(),
    }
}

fn limits_of(p: &proto::ResourceLimits) -> ResourceLimits {
    ResourceLimits {
        cpus_milli: p.cpus_milli,
        mem_bytes: p.mem_bytes,
        disk_bytes: p.disk_bytes,
        scalars_milli: p
            .scalars_milli
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

/// The kinds a limit names, with their bounds as amounts (for checks).
fn limits_as_amounts(p: &proto::ResourceLimits) -> Resources {
    Resources {
        cpus_milli: p.cpus_milli.unwrap_or(0),
        mem_bytes: p.mem_bytes.unwrap_or(0),
        disk_bytes: p.disk_bytes.unwrap_or(0),
        // Zero bounds too: the kind's name is what is checked.
        scalars_milli: p.scalars_milli.keys().map(|k| (k.clone(), 1)).collect(),
    }
}
