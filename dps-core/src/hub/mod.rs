//! IoT Hub device protocol: topics, property bags, connect fields.
