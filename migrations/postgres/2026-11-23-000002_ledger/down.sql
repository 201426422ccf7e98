DROP TABLE server_secrets; DROP TABLE subject_documents; DROP TABLE subject_heads; DROP TABLE events; DROP TABLE api_keys;
