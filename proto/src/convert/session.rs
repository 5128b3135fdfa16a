//! Session messages of the QUIC protocol: the client's and the server's hello, and the
//! subscriptions a vehicle sends in its hello and later on the control stream.

use rsu_fusion::Wgs84;

use super::Result;
use super::common::{id_string, limit, out_of_range, polygon_from_wire, polygon_to_wire, q_u32, required};
use crate::ConvertError;
use crate::domain::{ClientControl, ClientHello, Role, ServerHello, Subscription};
use crate::wire;

enum_mapping!(role_to_wire, role_from_wire, Role, Role, "role", [Vehicle, Sensor, SignalController]);

impl From<&Subscription> for wire::Subscription {
    fn from(s: &Subscription) -> Self {
        use wire::subscription::Region;
        let region = match s {
            Subscription::AroundMe { radius_m } => Region::AroundMe(wire::AroundMe { radius_m: *radius_m }),
            Subscription::Polygon(p) => Region::Polygon(polygon_to_wire(p)),
            Subscription::Everything => Region::Everything(true),
        };
        wire::Subscription { region: Some(region) }
    }
}

impl TryFrom<&wire::Subscription> for Subscription {
    type Error = ConvertError;
    fn try_from(s: &wire::Subscription) -> Result<Self> {
        use wire::subscription::Region;
        Ok(match required("subscription.region", &s.region)? {
            Region::AroundMe(a) => {
                if a.radius_m > 10_000 {
                    return Err(out_of_range("subscription.around_me.radius_m", a.radius_m, "0..=10000 m"));
                }
                Subscription::AroundMe { radius_m: a.radius_m }
            }
            Region::Polygon(p) => Subscription::Polygon(polygon_from_wire("subscription.polygon", p)?),
            Region::Everything(_) => Subscription::Everything,
        })
    }
}

impl From<&ClientHello> for wire::ClientHello {
    fn from(h: &ClientHello) -> Self {
        wire::ClientHello {
            versions: h.versions.iter().map(|v| i32::try_from(*v).unwrap_or(i32::MAX)).collect(),
            role: role_to_wire(h.role) as i32,
            id: h.id.clone(),
            subscription: h.subscription.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<&wire::ClientHello> for ClientHello {
    type Error = ConvertError;
    fn try_from(h: &wire::ClientHello) -> Result<Self> {
        limit("versions", &h.versions, 16)?;
        let role = role_from_wire(h.role)?;
        Ok(ClientHello {
            versions: h.versions.iter().filter_map(|v| u32::try_from(*v).ok()).collect(),
            role,
            id: id_string("id", &h.id)?,
            subscription: h.subscription.as_ref().map(Subscription::try_from).transpose()?,
        })
    }
}

impl From<&ServerHello> for wire::ServerHello {
    fn from(h: &ServerHello) -> Self {
        wire::ServerHello {
            version: i32::try_from(h.version).unwrap_or(0),
            rsu_id: h.rsu_id.clone(),
            site_origin: Some((&h.site_origin).into()),
            broadcast_rate_mhz: q_u32(h.broadcast_rate_hz, 0.001, u32::MAX),
            default_radius_m: h.default_radius_m,
        }
    }
}

impl TryFrom<&wire::ServerHello> for ServerHello {
    type Error = ConvertError;
    fn try_from(h: &wire::ServerHello) -> Result<Self> {
        if !(1..=1_000_000).contains(&h.broadcast_rate_mhz) {
            return Err(out_of_range("broadcast_rate_mhz", h.broadcast_rate_mhz, "1..=1000000 mHz"));
        }
        Ok(ServerHello {
            version: u32::try_from(h.version).map_err(|_| out_of_range("version", h.version, "a known version"))?,
            rsu_id: id_string("rsu_id", &h.rsu_id)?,
            site_origin: Wgs84::try_from(required("site_origin", &h.site_origin)?)?,
            broadcast_rate_hz: f64::from(h.broadcast_rate_mhz) / 1000.0,
            default_radius_m: h.default_radius_m,
        })
    }
}

impl From<&ClientControl> for wire::ClientControl {
    fn from(c: &ClientControl) -> Self {
        let body = match c {
            ClientControl::Subscribe(s) => wire::client_control::Body::Subscribe(s.into()),
        };
        wire::ClientControl { body: Some(body) }
    }
}

impl TryFrom<&wire::ClientControl> for ClientControl {
    type Error = ConvertError;
    fn try_from(c: &wire::ClientControl) -> Result<Self> {
        Ok(match required("body", &c.body)? {
            wire::client_control::Body::Subscribe(s) => ClientControl::Subscribe(Subscription::try_from(s)?),
        })
    }
}
