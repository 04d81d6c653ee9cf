//! DPS device protocol: topics, connect fields, JSON models and the registration state machine.
