-- Releases before the public status kept causes private wrote a failed provisioning's raw
-- cause (Linode's or the executor's own text: account details, internal ids) into the tenant's
-- public error. The operator keeps the cause in the job's last_error and the audit log; the
-- status gets the sentence releases since write.
UPDATE tenants SET error = 'Provisioning failed; our team has the details and can retry it.'
WHERE error LIKE 'Provisioning failed: %';
