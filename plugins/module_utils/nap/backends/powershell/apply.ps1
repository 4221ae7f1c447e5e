[CmdletBinding(SupportsShouldProcess)]
param (
    [Parameter(Mandatory = $true)][string]$Group,
    [Parameter(Mandatory = $true)][string]$NamePrefix,
    [int[]]$ManagementPorts = @(5986),
    [Parameter(Mandatory = $true)][string]$OpsJson,
    [string[]]$PredefinedGroups = @(),
    [string[]]$PredefinedNames = @()
)
# configmgr.nap win_nap_firewall: APPLY an op list in one call, then read the owned group back.
# The backend orders the ops: additions and in-place updates (management rules first), removals last.
#   add:    a new HNetCfg.FWRule, its properties set in the order given (Protocol before the ports).
#   update: the existing rule object (found by name, only in the owned group, or with an empty Grouping
#           when 'adopt' is set), its changed properties set in the order given. With 'temp', every copy
#           of a duplicated name is first renamed to a unique temporary name; the first copy is updated.
#   remove: the rule (only in the owned group) is renamed to a unique temporary name and removed by that
#           name, so that INetFwRules::Remove can never hit another rule of the same name.
#   disable / enable: a predefined rule (found by name, only with the Grouping given) gets Enabled false / true
#           (predefined: disable, then state: absent); enabling a rule that is gone is reported, not an error.
# The first failing op stops the run: nothing after it runs (no removal after a failed addition). Every op
# reports ok/error and the properties it set; the read-back (one more pass over the rules) is returned.
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false

#include common.ps1

$policy = New-Object -ComObject HNetCfg.FwPolicy2
$rules = $policy.Rules
# No @(): Windows PowerShell 5.1 writes a JSON array as ONE object, which @() would wrap again;
# foreach enumerates it either way.
$ops = ConvertFrom-Json -InputObject $OpsJson
$results = New-Object -TypeName System.Collections.ArrayList
$applied = 0
$failed = 0
$stopped = $false

function Get-OwnedRule {
    param ([string]$Name, [bool]$Adopt)
    try { $found = $rules.Item($Name) } catch { throw "no rule named '$Name' was found" }
    $grouping = [string]$found.Grouping
    if ($grouping -ne $Group -and -not ($Adopt -and $grouping -eq '')) {
        throw "the rule named '$Name' that Windows returned is in the group '$grouping', not '$Group'; it was not touched"
    }
    $found
}

function Get-PredefinedRule {
    param ([string]$Name, [string]$Grouping)
    try { $found = $rules.Item($Name) } catch { return $null }
    if ([string]$found.Grouping -ne $Grouping) {
        throw "the rule named '$Name' that Windows returned is in the group '$([string]$found.Grouping)', not '$Grouping'; it was not touched"
    }
    $found
}

function Set-RuleProperty {
    param ($Rule, [string]$Name, $Value)
    switch ($Name) {
        { $_ -in @('Direction', 'Action', 'Protocol', 'Profiles', 'SecureFlags') } { $Rule.$Name = [int]$Value; break }
        { $_ -in @('Enabled', 'EdgeTraversal') } { $Rule.$Name = [bool]$Value; break }
        'Interfaces' { $Rule.Interfaces = $null; break }
        default {
            if ([string]::IsNullOrEmpty([string]$Value)) { $Rule.$Name = $null } else { $Rule.$Name = [string]$Value }
        }
    }
}

foreach ($op in $ops) {
    $name = [string]$op.name
    $record = @{ op = [string]$op.op; name = $name; ok = $false; error = $null; set = @(); removed = 0 }
    if ($stopped) {
        $record.skipped = $true
        [void]$results.Add($record)
        continue
    }
    $done = New-Object -TypeName System.Collections.ArrayList
    try {
        if (-not $PSCmdlet.ShouldProcess($name, "$($op.op) firewall rule")) {
            $record.whatif = $true
        }
        elseif ($op.op -eq 'add') {
            $exists = $true
            try { [void]$rules.Item($name) } catch { $exists = $false }
            if ($exists) { throw "a rule named '$name' already exists; it was not added twice" }
            $new = New-Object -ComObject HNetCfg.FWRule
            foreach ($pair in $op.set) {
                Set-RuleProperty -Rule $new -Name ([string]$pair[0]) -Value $pair[1]
                [void]$done.Add([string]$pair[0])
            }
            $rules.Add($new)
            $record.ok = $true
        }
        elseif ($op.op -eq 'update') {
            $target = $null
            if ($op.temp) {
                foreach ($temp in $op.temp) {
                    $copy = Get-OwnedRule -Name $name -Adopt ([bool]$op.adopt)
                    $copy.Name = [string]$temp
                    if ($null -eq $target) { $target = $copy }
                }
            }
            else {
                $target = Get-OwnedRule -Name $name -Adopt ([bool]$op.adopt)
            }
            foreach ($pair in $op.set) {
                Set-RuleProperty -Rule $target -Name ([string]$pair[0]) -Value $pair[1]
                [void]$done.Add([string]$pair[0])
            }
            $record.ok = $true
        }
        elseif ($op.op -eq 'remove') {
            foreach ($temp in $op.temp) {
                $victim = Get-OwnedRule -Name $name -Adopt $false
                if ([string]$temp -ne $name) { $victim.Name = [string]$temp }
                $rules.Remove([string]$temp)
                $record.removed++
            }
            $record.ok = $true
        }
        elseif ($op.op -eq 'disable' -or $op.op -eq 'enable') {
            $target = Get-PredefinedRule -Name $name -Grouping ([string]$op.grouping)
            if ($null -eq $target) {
                if ($op.op -eq 'disable') { throw "no rule named '$name' was found" }
                $record.missing = $true
            }
            else {
                $target.Enabled = ($op.op -eq 'enable')
                [void]$done.Add('Enabled')
            }
            $record.ok = $true
        }
        else {
            throw "unknown op '$($op.op)'"
        }
    }
    catch {
        $record.error = $_.Exception.Message
        $stopped = $true
    }
    $record.set = $done.ToArray()
    if ($record.ok) { $applied++ } elseif (-not $record.whatif) { $failed++ }
    [void]$results.Add($record)
}
$Ansible.Changed = ($applied -gt 0)
$readback = Get-FirewallState -Policy $policy -Group $Group -NamePrefix $NamePrefix -ManagementPorts $ManagementPorts `
    -PredefinedGroups $PredefinedGroups -PredefinedNames $PredefinedNames
$Ansible.Result = ConvertTo-Json -InputObject @{ results = $results.ToArray(); applied = $applied; failed = $failed; readback = $readback } -Depth 6 -Compress
