//! RFC 9293 connection states and the two sides of a connection.

use serde::Serialize;
use std::fmt;

/// An endpoint's RFC 9293 state, as inferred from what the capture point sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TcpState {
    /// No connection (also: before the first SYN, after a RST or after LAST_ACK).
    #[default]
    Closed,
    /// Waiting for a SYN (a server before the first SYN arrives).
    Listen,
    /// SYN sent, waiting for the SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent, waiting for the final ACK.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// Sent a FIN, waiting for its ACK.
    FinWait1,
    /// Our FIN is acknowledged, waiting for the peer's FIN.
    FinWait2,
    /// The peer's FIN arrived; we may still send.
    CloseWait,
    /// Both FINs crossed; waiting for the ACK of ours.
    Closing,
    /// Passive closer: sent its FIN, waiting for the ACK.
    LastAck,
    /// Active closer: waits 2 MSL before the 4-tuple may be reused.
    TimeWait,
}

impl TcpState {
    /// The contract name (`SYN_SENT`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynReceived => "SYN_RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
        }
    }

    /// Parses a contract name (used by tests reading other tools' truth).
    pub fn from_name(s: &str) -> Option<TcpState> {
        ALL_STATES.iter().copied().find(|st| st.as_str() == s)
    }

    /// The connection is open in both directions or being closed (not before the handshake).
    pub fn synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        )
    }
}

/// Every state, in RFC order.
pub const ALL_STATES: [TcpState; 11] = [
    TcpState::Closed,
    TcpState::Listen,
    TcpState::SynSent,
    TcpState::SynReceived,
    TcpState::Established,
    TcpState::FinWait1,
    TcpState::FinWait2,
    TcpState::CloseWait,
    TcpState::Closing,
    TcpState::LastAck,
    TcpState::TimeWait,
];

impl Serialize for TcpState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The side that sent the first SYN (or the likelier one).
    Client,
    /// The other side.
    Server,
}

impl Side {
    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
    /// 0 for the client, 1 for the server.
    pub fn index(self) -> usize {
        self as usize
    }
    /// `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change of one side, attached to the packet that causes or proves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Whose state changed.
    pub side: Side,
    /// Before.
    pub from: TcpState,
    /// After.
    pub to: TcpState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_contract() {
        for s in ALL_STATES {
            assert_eq!(TcpState::from_name(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(TcpState::FinWait1.as_str(), "FIN_WAIT_1");
    }
}
