//! Slack (placeholder).
