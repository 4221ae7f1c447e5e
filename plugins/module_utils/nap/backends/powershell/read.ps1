[CmdletBinding(SupportsShouldProcess)]
param (
    [Parameter(Mandatory = $true)][string]$Group,
    [Parameter(Mandatory = $true)][string]$NamePrefix,
    [int[]]$ManagementPorts = @(5986),
    [string]$MinOsVersion = '6.1.7601',
    [string]$MinPsVersion = '5.1',
    [string[]]$PredefinedGroups = @(),
    [string[]]$PredefinedNames = @()
)
# configmgr.nap win_nap_firewall: READ ONLY. One pass over (New-Object -ComObject HNetCfg.FwPolicy2).Rules.
# Returns the rules of the owned group or with the owned name prefix, the enabled inbound TCP rules of other
# groups on the management port (anti-lockout), the inbound rules of the predefined groups named by
# PredefinedGroups (Grouping resource strings) or PredefinedNames (rule names), the profile state, the Group Policy registry,
# LocalPolicyModifyState and the OS and PowerShell versions, as one JSON string.
# Runs through ansible.windows.win_powershell: [CmdletBinding(SupportsShouldProcess)] (else it is skipped in
# check mode), $Ansible.Changed set explicitly, ONE JSON string in $Ansible.Result.
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false

#include common.ps1

$os = [Environment]::OSVersion.Version
$out = @{
    format = 2
    os_version = $os.ToString()
    ps_version = $PSVersionTable.PSVersion.ToString()
    supported = $false
    walks = 0
    rule_count = 0
    rules = @()
    management_rules = @()
    predefined_rules = @()
    profiles = @{}
}
if ($os -lt [version]$MinOsVersion -or $PSVersionTable.PSVersion -lt [version]$MinPsVersion) {
    $Ansible.Result = ConvertTo-Json -InputObject $out -Depth 6 -Compress
    return
}
$out.supported = $true
$policy = New-Object -ComObject HNetCfg.FwPolicy2
$state = Get-FirewallState -Policy $policy -Group $Group -NamePrefix $NamePrefix -ManagementPorts $ManagementPorts `
    -PredefinedGroups $PredefinedGroups -PredefinedNames $PredefinedNames
foreach ($key in @($state.Keys)) { $out[$key] = $state[$key] }
$Ansible.Result = ConvertTo-Json -InputObject $out -Depth 6 -Compress
