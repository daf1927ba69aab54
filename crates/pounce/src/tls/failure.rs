//! Why a TLS handshake did not complete: one closed set of reasons, shaped
//! for counting. Each reason has a fixed index ([`HandshakeFailure::index`])
//! into a per-worker array of counters and a stable lower-case label
//! ([`HandshakeFailure::label`]) that a metrics exporter can use as a label
//! value as it is (`reason="protocol_version"`). The debug line a failed
//! handshake logs names the same label, then the detail.

use rustls::{Error, PeerIncompatible};
use std::fmt;

/// The reason a handshake failed. New reasons go at the end, so indexes
/// already exported keep their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HandshakeFailure {
    /// Not complete within header_timeout, counted from the accept (a
    /// client that connects and sends nothing, or stalls mid-handshake).
    Timeout,
    /// A plain HTTP request on the HTTPS port: answered `400`.
    PlainHttp,
    /// The first bytes are neither TLS nor HTTP: garbage, a port scanner,
    /// an SSLv2-style hello.
    NotTls,
    /// The client offers no version pounce speaks (TLS 1.1 and older).
    ProtocolVersion,
    /// The client offers ALPN without `http/1.1` (an `h2`-only client).
    NoApplicationProtocol,
    /// No cipher suite, key exchange group or signature scheme in common.
    NoCommonParameters,
    /// The client aborted with an alert (it does not trust the certificate,
    /// say).
    ClientAlert,
    /// A malformed or out-of-order handshake message, or a bad record.
    BadMessage,
    /// The client closed or reset the connection before the handshake
    /// completed (a truncated handshake).
    ClientClosed,
    /// The worker was forced to stop (shutdown_timeout) mid-handshake.
    Shutdown,
    /// Anything else rustls refused.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in index order.
    pub(crate) const ALL: [HandshakeFailure; 11] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::PlainHttp,
        HandshakeFailure::NotTls,
        HandshakeFailure::ProtocolVersion,
        HandshakeFailure::NoApplicationProtocol,
        HandshakeFailure::NoCommonParameters,
        HandshakeFailure::ClientAlert,
        HandshakeFailure::BadMessage,
        HandshakeFailure::ClientClosed,
        HandshakeFailure::Shutdown,
        HandshakeFailure::Other,
    ];
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// Position in [`ALL`](Self::ALL): the index of this reason's counter.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// A stable lower-case name, usable as a metrics label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::PlainHttp => "plain_http",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::ProtocolVersion => "protocol_version",
            HandshakeFailure::NoApplicationProtocol => "no_application_protocol",
            HandshakeFailure::NoCommonParameters => "no_common_parameters",
            HandshakeFailure::ClientAlert => "client_alert",
            HandshakeFailure::BadMessage => "bad_message",
            HandshakeFailure::ClientClosed => "client_closed",
            HandshakeFailure::Shutdown => "shutdown",
            HandshakeFailure::Other => "other",
        }
    }

    /// Classifies what rustls reported.
    pub(crate) fn of(e: &Error) -> HandshakeFailure {
        use PeerIncompatible as P;
        match e {
            Error::PeerIncompatible(
                P::Tls12NotOffered | P::Tls12NotOfferedOrEnabled | P::SupportedVersionsExtensionRequired,
            ) => HandshakeFailure::ProtocolVersion,
            Error::PeerIncompatible(_) => HandshakeFailure::NoCommonParameters,
            Error::NoApplicationProtocol => HandshakeFailure::NoApplicationProtocol,
            Error::AlertReceived(_) => HandshakeFailure::ClientAlert,
            Error::InvalidMessage(_)
            | Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::PeerMisbehaved(_)
            | Error::DecryptError
            | Error::PeerSentOversizedRecord => HandshakeFailure::BadMessage,
            _ => HandshakeFailure::Other,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::AlertDescription;

    #[test]
    fn indexes_follow_the_list_and_labels_are_unique() {
        for (i, r) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut labels: Vec<&str> = HandshakeFailure::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), HandshakeFailure::COUNT);
        assert!(labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn rustls_errors_are_classified() {
        let of = |e: Error| HandshakeFailure::of(&e);
        assert_eq!(of(PeerIncompatible::Tls12NotOffered.into()), HandshakeFailure::ProtocolVersion);
        assert_eq!(of(PeerIncompatible::NoCipherSuitesInCommon.into()), HandshakeFailure::NoCommonParameters);
        assert_eq!(of(Error::NoApplicationProtocol), HandshakeFailure::NoApplicationProtocol);
        assert_eq!(of(Error::AlertReceived(AlertDescription::UnknownCA)), HandshakeFailure::ClientAlert);
        assert_eq!(of(Error::DecryptError), HandshakeFailure::BadMessage);
        assert_eq!(of(Error::General("x".into())), HandshakeFailure::Other);
    }
}
